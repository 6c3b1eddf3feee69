"""Errors of the files module (RFC 9457 problems with stable codes)."""

from __future__ import annotations

from nidaan.kit.errors import InvalidInput, NidaanError, NotFound


class FileNotFound(NotFound):
    code = "file_not_found"
    title = "File not found"


class FileDeleted(NidaanError):
    status_code = 410
    code = "file_deleted"
    title = "File deleted"


class FileTooLarge(NidaanError):
    status_code = 413
    code = "file_too_large"
    title = "File too large"


class FileTypeNotAllowed(NidaanError):
    status_code = 415
    code = "file_type_not_allowed"
    title = "File type not allowed"


class EmptyFile(InvalidInput):
    code = "empty_file"
    title = "Empty file"


class PurposeNotUploadable(InvalidInput):
    code = "purpose_not_uploadable"
    title = "This kind of file is made by Nidaan, not uploaded"


class InvalidUpload(InvalidInput):
    code = "invalid_upload"
    title = "Invalid upload"


class FileMissingFromStore(NidaanError):
    status_code = 500
    code = "file_missing_from_store"
    title = "Stored file missing"
