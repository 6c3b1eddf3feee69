"""Each module's role matrix: a ``CASES`` list and an async ``context()`` giving path params.

`tests/http/test_role_matrix.py` collects every module here; a module adds its file.
"""
