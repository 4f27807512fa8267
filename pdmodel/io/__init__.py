"""File machinery every layer that writes uses: atomic writes, run provenance, compiled
programs stored on disk and the persistent compilation cache.

Domain-free on purpose (it imports nothing else of pdmodel), so the fit's run folder and
:func:`pdmodel.save` share one atomic write.
"""

from ._atomic import FileContent as FileContent
from ._atomic import atomic_write as atomic_write
from ._atomic import atomic_write_bytes as atomic_write_bytes
from ._atomic import atomic_write_text as atomic_write_text
from ._atomic import fsync_dir as fsync_dir
from ._atomic import write_new_file as write_new_file
from ._cache import CACHE_ENV as CACHE_ENV
from ._cache import NO_CACHE_ENV as NO_CACHE_ENV
from ._cache import compilation_cache_dir as compilation_cache_dir
from ._cache import enable_compilation_cache as enable_compilation_cache
from ._programs import package_source_hash as package_source_hash
from ._programs import source_hash as source_hash
from ._programs import stored_call as stored_call
from ._versions import VERSION_PACKAGES as VERSION_PACKAGES
from ._versions import package_versions as package_versions
from ._versions import versions_info as versions_info

__all__ = [
    "atomic_write", "atomic_write_bytes", "atomic_write_text", "write_new_file", "fsync_dir",
    "FileContent", "stored_call", "source_hash", "package_source_hash", "VERSION_PACKAGES",
    "package_versions",
    "versions_info", "enable_compilation_cache", "compilation_cache_dir", "CACHE_ENV",
    "NO_CACHE_ENV",
]
