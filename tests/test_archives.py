"""The local target's .tar.gz archives: ISA-L gzip that every other reader opens as it is."""

from __future__ import annotations

import io
import sys
import tarfile

import pytest

from include.pipeline.targets.local import archives


def _folder(root):
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text("print('hi')\n")
    (root / "model.safetensors").write_bytes(bytes(range(256)) * 400)
    return root


def test_a_folder_round_trips_and_stdlib_tarfile_reads_the_archive(tmp_path):
    data = archives.folder_tar_gz(_folder(tmp_path / "model"))
    assert data[:2] == b"\x1f\x8b"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:  # what SageMaker's tar does
        assert sorted(tar.getnames()) == ["code", "code/inference.py", "model.safetensors"]
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(data)
    archives.extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == bytes(range(256)) * 400
    assert (tmp_path / "out" / "code" / "inference.py").read_text() == "print('hi')\n"
    assert archives.folder_tar_gz(tmp_path / "model") == data  # same files, same bytes


def test_extract_reads_a_plain_tar_and_refuses_members_outside_the_target(tmp_path):
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        info = tarfile.TarInfo("model.pkl")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    archives.extract(plain, tmp_path / "plain")
    assert (tmp_path / "plain" / "model.pkl").read_bytes() == b"abc"

    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(archives.tar_gz([("../escaped.txt", b"x")]))
    with pytest.raises(tarfile.OutsideDestinationError):
        archives.extract(evil, tmp_path / "evil")
    assert not (tmp_path / "escaped.txt").exists()


def test_a_job_without_isal_unpacks_the_same_files_with_zlib(tmp_path, monkeypatch):
    from include.jobs import archives as job_archives

    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(archives.folder_tar_gz(_folder(tmp_path / "model")))
    monkeypatch.setitem(sys.modules, "isal", None)  # a SageMaker container: no python-isal
    with pytest.raises(ImportError):
        from isal import igzip  # noqa: F401
    job_archives.extract(archive, tmp_path / "zlib")
    assert (tmp_path / "zlib" / "model.safetensors").read_bytes() == bytes(range(256)) * 400
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(archives.tar_gz([("../escaped.txt", b"x")]))
    with pytest.raises(tarfile.OutsideDestinationError):
        job_archives.extract(evil, tmp_path / "evil")
