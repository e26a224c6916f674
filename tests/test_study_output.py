"""``denoisenet study --out``: a user's files are never overwritten without
asking, every file is written atomically and never through a symlink, and a
failed or interrupted run leaves nothing half-written behind."""

import errno
import os

import pytest

from denoisenet.study import experiments, output

STUDY_FILES = [
    "samples.png",
    "denoising.png",
    "maps.png",
    "loss_curves.png",
    "results.json",
    "report.md",
    "report.html",
]
# A run that takes a few seconds: every step, tiny.
QUICK = ["study", "--n-train", "50", "--max-iter", "1", "--quiet"]
SMALL = {"MAP_SAMPLES": 100, "TRUSTWORTHINESS_SAMPLES": 80}


def snapshot(folder):
    """Every entry of ``folder``: name to (inode, bytes or link target)."""
    entries = {}
    for entry in os.scandir(folder):
        if entry.is_symlink():
            entries[entry.name] = ("link", os.readlink(entry.path))
        else:
            with open(entry.path, "rb") as f:
                entries[entry.name] = (entry.inode(), f.read())
    return entries


@pytest.fixture
def old_study(tmp_path):
    """A folder that holds a previous run's files and a file of the user's."""
    out = tmp_path / "out"
    out.mkdir()
    for name in STUDY_FILES:
        (out / name).write_bytes(f"old {name}".encode())
    (out / "notes.txt").write_text("the user's own notes")
    return out


# -- refusing a folder that holds files ----------------------------------------


@pytest.mark.parametrize("name", ["notes.txt", ".hidden", *STUDY_FILES])
def test_a_folder_that_holds_any_file_is_refused(tmp_path, study_cli, name):
    (tmp_path / name).write_text("the user's")
    status, _, stderr = study_cli.run([*QUICK, "--out", str(tmp_path)])
    study_cli.assert_error(status, stderr, "already holds files", name, "--overwrite")
    assert os.listdir(tmp_path) == [name]
    assert (tmp_path / name).read_text() == "the user's"


def test_a_folder_that_holds_a_folder_is_refused(tmp_path, study_cli):
    (tmp_path / "runs").mkdir()
    status, _, stderr = study_cli.run([*QUICK, "--out", str(tmp_path)])
    study_cli.assert_error(status, stderr, "already holds files", "runs")


def test_refusal_comes_before_any_work(tmp_path, study_cli, monkeypatch):
    (tmp_path / "report.md").write_text("mine")

    def no_data(config):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr("denoisenet.study.load_data", no_data)
    status, _, stderr = study_cli.run([*QUICK, "--out", str(tmp_path)])
    study_cli.assert_error(status, stderr, "already holds files")


def test_overwrite_replaces_only_the_study_files(old_study, study_cli):
    before = snapshot(old_study)
    status, _, stderr = study_cli.run(
        [*QUICK, "--overwrite", "--out", str(old_study)], **SMALL
    )
    assert status == 0, stderr
    after = snapshot(old_study)
    assert sorted(after) == sorted(before)  # no temporary files left
    assert after["notes.txt"] == before["notes.txt"]
    for name in STUDY_FILES:
        assert after[name][1] != before[name][1], name
    assert (old_study / "report.md").read_text().startswith("# denoisenet study")


def test_a_new_nested_folder_is_created(tmp_path, study_cli):
    out = tmp_path / "a" / "b"
    status, _, stderr = study_cli.run([*QUICK, "--out", str(out)], **SMALL)
    assert status == 0, stderr
    assert sorted(os.listdir(out)) == sorted(STUDY_FILES)


# -- symlinks ---------------------------------------------------------------------


def test_a_symlink_is_replaced_never_written_through(tmp_path, study_cli):
    victim = tmp_path / "victim.md"
    victim.write_text("must stay")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").symlink_to(victim)
    status, _, stderr = study_cli.run([*QUICK, "--out", str(out)])
    study_cli.assert_error(status, stderr, "already holds files", "report.md")
    status, _, stderr = study_cli.run(
        [*QUICK, "--overwrite", "--out", str(out)], **SMALL
    )
    assert status == 0, stderr
    assert victim.read_text() == "must stay"
    assert not (out / "report.md").is_symlink()
    assert (out / "report.md").read_text().startswith("# denoisenet study")


def test_a_symlink_at_a_temporary_name_is_never_followed(tmp_path, monkeypatch):
    # Someone who can guess the temporary name plants a link there first.
    victim = tmp_path / "victim"
    victim.write_text("must stay")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(output.secrets, "token_hex", lambda n: "guessed")
    (out / ".report.md.guessed.tmp").symlink_to(victim)
    with output.OutputFolder(out, overwrite=True) as folder:
        with pytest.raises(output.StudyError, match=r"report\.md"):
            folder.write({"report.md": b"new"})
    assert victim.read_text() == "must stay"
    assert not (out / "report.md").exists()


# -- files that appear during the run ---------------------------------------------


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_file_that_appears_during_the_run_is_never_replaced(
    tmp_path, monkeypatch, hard_links
):
    # The folder is checked when the run starts; another run into the same
    # folder (or the user) may write there before this one ends.
    if not hard_links:  # a file system without them (FAT, some shares)

        def link(*args, **kwargs):
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))

        monkeypatch.setattr(output.os, "link", link)
    out = tmp_path / "out"
    out.mkdir()
    files = {"samples.png": b"png", "results.json": b"{}", "report.md": b"# new"}
    with output.OutputFolder(out) as folder:
        (out / "results.json").write_text("the other run's results")
        with pytest.raises(output.StudyError, match="appeared in --out during the run"):
            folder.write(files)
    # The other run's file stays; this run's files, a part of a report, go.
    assert os.listdir(out) == ["results.json"]
    assert (out / "results.json").read_text() == "the other run's results"
    with output.OutputFolder(tmp_path / "new") as folder:
        folder.write(files)
    assert sorted(os.listdir(tmp_path / "new")) == sorted(files)


def test_ctrl_c_while_the_files_are_put_in_place_says_which_are_new(
    old_study, monkeypatch
):
    calls = []
    original = os.replace

    def replace(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(source, target)

    monkeypatch.setattr(output.os, "replace", replace)
    folder = output.OutputFolder(old_study, overwrite=True)
    with pytest.raises(KeyboardInterrupt), folder:
        folder.write({name: b"new" for name in STUDY_FILES})
    outcome = folder.outcome()
    # Not "no report was written": two of the files are new.
    assert "written only in part" in outcome
    assert "samples.png, denoising.png in" in outcome
    assert (old_study / "maps.png").read_bytes() == b"old maps.png"
    assert (old_study / "notes.txt").read_text() == "the user's own notes"


def test_a_failed_write_names_the_outermost_folder_it_removed(tmp_path, monkeypatch):
    full_disk_at(monkeypatch, 1)
    with output.OutputFolder(tmp_path / "a" / "b" / "c") as folder:
        with pytest.raises(output.StudyError, match=r"folder '.*a' that it had"):
            folder.write({"report.md": b"new"})
    assert os.listdir(tmp_path) == []


# -- a full disk, a failed rename -----------------------------------------------


def full_disk_at(monkeypatch, n):
    """Make the n-th file write fail as a full disk does."""
    calls = []
    original = output.write_bytes

    def write_bytes(fd, data):
        calls.append(1)
        if len(calls) == n:
            os.write(fd, data[: len(data) // 2])  # half-written, then full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(fd, data)

    monkeypatch.setattr(output, "write_bytes", write_bytes)


@pytest.mark.parametrize("n", [1, 6, 7])
def test_full_disk_leaves_old_files_untouched(old_study, study_cli, monkeypatch, n):
    before = snapshot(old_study)
    full_disk_at(monkeypatch, n)
    status, _, stderr = study_cli.run(
        [*QUICK, "--overwrite", "--out", str(old_study)], **SMALL
    )
    study_cli.assert_error(
        status, stderr, "No space left on device", STUDY_FILES[n - 1], "nothing in"
    )
    assert snapshot(old_study) == before  # same inodes, same bytes, no leftovers


def test_full_disk_removes_the_folders_it_created(tmp_path, study_cli, monkeypatch):
    full_disk_at(monkeypatch, 5)
    out = tmp_path / "a" / "b"
    status, _, stderr = study_cli.run([*QUICK, "--out", str(out)], **SMALL)
    study_cli.assert_error(status, stderr, "No space left", "was removed")
    assert os.listdir(tmp_path) == []


def test_a_failed_rename_says_which_files_are_new(old_study, study_cli, monkeypatch):
    before = snapshot(old_study)
    original = os.replace

    def replace(source, target):
        if str(target).endswith("report.md"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        original(source, target)

    monkeypatch.setattr(output.os, "replace", replace)
    status, _, stderr = study_cli.run(
        [*QUICK, "--overwrite", "--out", str(old_study)], **SMALL
    )
    study_cli.assert_error(status, stderr, "report.md", "results.json", "from before")
    after = snapshot(old_study)
    assert sorted(after) == sorted(before)
    for name in STUDY_FILES:
        new = name not in ("report.md", "report.html")
        assert (after[name] != before[name]) == new, name


def test_a_failed_step_removes_the_folder_it_created(tmp_path, study_cli):
    out = tmp_path / "new"
    status, _, stderr = study_cli.run(["study", "--n-train", "5", "--out", str(out)])
    study_cli.assert_error(status, stderr, "--n-train 5")
    assert not out.exists()


# -- Ctrl-C ---------------------------------------------------------------------


def interrupt_maps(monkeypatch):
    def maps(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "maps", maps)


def test_ctrl_c_removes_the_folder_it_created(tmp_path, study_cli, monkeypatch):
    interrupt_maps(monkeypatch)
    out = tmp_path / "new"
    status, stdout, stderr = study_cli.run([*QUICK, "--out", str(out)])
    assert status == 130 and stdout == ""
    study_cli.assert_one_line(
        stderr, "no report was written", "was removed", start="denoisenet: interrupted"
    )
    assert not out.exists()


def test_ctrl_c_leaves_an_existing_folder_as_it_was(old_study, study_cli, monkeypatch):
    interrupt_maps(monkeypatch)
    before = snapshot(old_study)
    argv = [*QUICK, "--overwrite", "--out", str(old_study)]
    status, _, stderr = study_cli.run(argv)
    assert status == 130
    study_cli.assert_one_line(
        stderr, "nothing in", str(old_study), start="denoisenet: interrupted"
    )
    assert snapshot(old_study) == before


def test_ctrl_c_while_writing_leaves_old_files(old_study, study_cli, monkeypatch):
    before = snapshot(old_study)
    original = output.write_bytes

    def write_bytes(fd, data):
        if len(os.listdir(old_study)) > len(before) + 3:
            raise KeyboardInterrupt
        original(fd, data)

    monkeypatch.setattr(output, "write_bytes", write_bytes)
    argv = [*QUICK, "--overwrite", "--out", str(old_study)]
    status, _, stderr = study_cli.run(argv, **SMALL)
    assert status == 130
    study_cli.assert_one_line(stderr, "nothing in", start="denoisenet: interrupted")
    assert snapshot(old_study) == before
