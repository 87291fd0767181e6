"""The file driver: real file-system operations confined to the automation's root folder.

It is the runtime's own `Files` (the same class the sandbox binds to the jail's world), because file
operations need nothing outside the standard library and must behave the same in the jail and in
production: paths from the log (Windows separators and drive letters included) are mapped below the
root, `..` and any symbolic link on the path are refused, reads and writes are byte-exact. Re-exported here
so that every production driver has its home in `rote.drivers`.
"""

from __future__ import annotations

from rote.generator.runtime import Files

#: Operations whose completion changes the world: a run that fails after one of them is not retried.
COMMITTING_FILE_OPS = frozenset({"write_file", "copy_file", "move_file", "delete_file", "make_dir"})

__all__ = ["COMMITTING_FILE_OPS", "Files"]
