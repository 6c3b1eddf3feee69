"""Files: every stored document (report PDFs, labels, uploads) as a versioned, access-checked
record over the object store, with soft delete, retention and a purge job.

The object stores themselves (local disk, S3-compatible) are platform code in
``nidaan.kit.storage``; this module owns the records, the rules per purpose and the API.
"""
