"""The study's output folder and the files written into it.

A user's files are never overwritten without asking:
:class:`OutputFolder` refuses a folder that already holds anything unless
``--overwrite`` is given, and then replaces only the study's own files.
Without it, a file that appears in the folder during the run (another run
writing to the same folder, say) is not replaced either: each file is put
in place with a hard link, which fails on an existing name.
Every file is written in two phases: all of them to temporary files in
the folder first, then each put in place (linked, or with --overwrite
renamed over its name with :func:`os.replace`). A rename replaces a
symlink at the target path rather than writing through it, and a full
disk or a Ctrl-C during the first phase leaves the old files exactly as
they were. A run that fails removes the temporary
files, and the folder too when the run created it.
"""

import errno
import os
import secrets
import tempfile
from pathlib import Path

from denoisenet.study.config import StudyError


def write_bytes(fd, data):
    """Write all of ``data`` to the open file descriptor ``fd`` and sync it.

    A separate function so that tests can fail it as a full disk would.
    """
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


class OutputFolder:
    """The ``--out`` folder of one run, used as a context manager.

    Entering creates the folder (and its missing parents) or checks that an
    existing one may be written; leaving with an exception removes what the
    run made. :attr:`left` says in words what a failed run left behind.

    Parameters
    ----------
    path : str or path-like
        The ``--out`` folder.
    overwrite : bool, default=False
        Whether a folder that already holds files may be written into.
    """

    def __init__(self, path, overwrite=False):
        self.path = Path(path)
        self.overwrite = overwrite
        self.left = f"{self._shown()} was left as it was"
        self._created = []
        self._temporary = []
        self._replaced = []
        self._done = False
        self._cleaned = False

    def _shown(self):
        return repr(str(self.path))

    def __enter__(self):
        try:
            self._check_existing()
            self._make_folders()
            # mkdir succeeds on an existing read-only folder: only a real
            # file tells whether the report can be written at the end.
            with tempfile.TemporaryFile(dir=self.path):
                pass
        except OSError as exc:
            self._clean_up()
            reason = exc.strerror or str(exc)
            raise StudyError(
                f"cannot write to --out {self._shown()}: {reason}"
            ) from exc
        return self

    def __exit__(self, exc_type, exc, traceback):
        # Once every file is in place the report is complete and true: keep
        # it even if something (a late Ctrl-C) interrupts what follows.
        if exc_type is not None and not self._done:
            self._clean_up()
        return False

    def _check_existing(self):
        if not self.path.is_dir() or self.overwrite:
            return
        names = sorted(entry.name for entry in os.scandir(self.path))
        if names:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise StudyError(
                f"--out {self._shown()} already holds files ({shown}); choose "
                "a new folder, or pass --overwrite to replace the study's "
                "files there"
            )

    def _make_folders(self):
        missing = []
        folder = self.path
        while not os.path.lexists(folder) and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            folder.mkdir()
            self._created.append(folder)
        if not self.path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))

    def write(self, files):
        """Write ``files``, a dict of file name to bytes, into the folder.

        All of them go to temporary files first; only when every one is
        complete are they renamed into place, so a failure leaves the
        folder's old files as they were.
        """
        staged = {
            name: self._write_temporary(name, data) for name, data in files.items()
        }
        for name, temporary in staged.items():
            try:
                self._place(temporary, self.path / name)
            except OSError as exc:
                self._failed(name, exc)
            self._temporary.remove(temporary)
            self._replaced.append(name)
        self._done = True

    def _place(self, temporary, target):
        """Move ``temporary`` to ``target``; without --overwrite, never over
        a file that is there now."""
        if self.overwrite:
            os.replace(temporary, target)
            return
        # The folder held nothing when the run started; a file that has
        # appeared since is someone else's. A hard link fails on an existing
        # name, which a check followed by a rename could not promise.
        try:
            os.link(temporary, target, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError:
            # A file system without hard links (FAT, some network shares):
            # the check and the rename, as close together as they can be.
            if os.path.lexists(target):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST)) from None
            os.replace(temporary, target)
            return
        os.unlink(temporary)

    def _write_temporary(self, name, data):
        # A fresh name, created exclusively: never an existing file or link.
        temporary = self.path / f".{name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(temporary, flags, 0o666)
        except OSError as exc:
            self._failed(name, exc)
        self._temporary.append(temporary)
        try:
            try:
                write_bytes(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            self._failed(name, exc)
        return temporary

    def _failed(self, name, exc):
        self._clean_up()
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError) and not self.overwrite:
            reason = (
                "a file of that name appeared in --out during the run (another "
                "run writing to the same folder?) and was not replaced; choose a "
                "new folder, or pass --overwrite"
            )
        raise StudyError(
            f"cannot write {self.path / name}: {reason}; {self.left}"
        ) from exc

    def outcome(self):
        """What an interrupted run leaves, in words (after :meth:`__exit__`)."""
        if self._done:
            return f"the report in {self._shown()} is complete and was kept"
        if self._replaced:
            return f"the report was written only in part: {self.left}"
        return f"no report was written, and {self.left}"

    def _clean_up(self):
        """Remove the temporary files, and the folders this run created.

        Without --overwrite the folder was new or empty: the files this run
        had put in place go too, so that no half report is left.
        """
        if self._cleaned:
            return
        self._cleaned = True
        for temporary in self._temporary:
            temporary.unlink(missing_ok=True)
        self._temporary = []
        removed = False
        if self._created or not self.overwrite:
            for name in self._replaced:
                (self.path / name).unlink(missing_ok=True)
            removed = bool(self._replaced)
            self._replaced = []
        if self._created:
            for folder in reversed(self._created):
                try:
                    folder.rmdir()
                except OSError:
                    self.left = (
                        f"the folder {str(folder)!r} that it had created now "
                        "holds other files and was left"
                    )
                    return
            # The outermost folder it created held the others.
            outermost = str(self._created[0])
            self.left = f"the folder {outermost!r} that it had created was removed"
        elif removed:
            self.left = f"the files it had written into {self._shown()} were removed"
        elif self._replaced:
            self.left = (
                f"{', '.join(self._replaced)} in {self._shown()} are from this "
                "run, the other files from before"
            )
        else:
            self.left = f"nothing in {self._shown()} was changed"
