"""Getting a dataset's files: verified copies in data/raw/<dataset>/, from the first source that
works.

A file is fetched from the first source that has it with the right md5: the copy shipped in
the repo (`data/<dataset>/`), then one built locally (`data/mirror/<dataset>/`: `make proxy`
puts the CIFAR-10 proxy there), then `NORMLAB_DATA_MIRROR` (a folder or URL laid out
`<mirror>/<dataset>/<file>`), then the official host. Each copy lands in a temp file and is
renamed only after its md5 matches, so a broken transfer never passes as a good file.
The CIFAR-10 archive is unpacked member by member against an allow-list.
"""

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from normlab.data.specs import CIFAR_ALLOWED, CIFAR_DIR, CIFAR_MEMBERS, spec
from normlab.errors import NormlabError

MIRROR_ENV = "NORMLAB_DATA_MIRROR"
SHIPPED = Path("data")
BUILT = SHIPPED / "mirror"  # built here, never committed (`make proxy`)


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sources(dataset: str, name: str) -> list[str]:
    """Every place `name` may come from, best first (folders as paths, hosts as URLs)."""
    sources = [str(SHIPPED / dataset / name), str(BUILT / dataset / name)]
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        if "://" in mirror:
            sources.append(f"{mirror.rstrip('/')}/{dataset}/{name}")
        elif not Path(mirror).is_dir():
            raise NormlabError(
                f"{MIRROR_ENV}={mirror}: no such folder (expected <mirror>/{dataset}/{name})"
            )
        else:
            sources.append(str(Path(mirror) / dataset / name))
    sources += [url + name for url in spec(dataset).urls]
    return sources


def _copy(source: str, tmp: Path) -> None:
    """Copy a folder file or download a URL into `tmp` (pooch: retries, progress bar)."""
    if "://" not in source:
        shutil.copyfile(source, tmp)
        return
    import pooch  # only needed when the network is

    tmp.unlink()  # pooch skips the download when the target already exists
    pooch.retrieve(source, known_hash=None, fname=tmp.name, path=tmp.parent, progressbar=True)


def fetch(dataset: str, name: str, dest: Path) -> str:
    """Put a verified copy of `name` at `dest`; return the source used; a one-line error if none
    works.

    A file with no published md5 (the proxy) is taken from the first source that has it, and
    its md5 is reported instead of checked.
    """
    want = spec(dataset).files[name]
    if want and dest.exists() and md5(dest) == want:
        return str(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tried = []
    for source in _sources(dataset, name):
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{name}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if "://" not in source and not Path(source).is_file():
                tried.append(f"{source} (missing)")
                continue
            try:
                _copy(source, tmp)
            except Exception as err:  # any transfer failure: note it, try the next source
                tried.append(f"{source} ({type(err).__name__})")
                continue
            got = md5(tmp)
            if want and got != want:
                tried.append(f"{source} (md5 {got}, expected {want})")
                continue
            os.replace(tmp, dest)
            return source if want else f"{source} (md5 {got}: no published md5 to check)"
        finally:
            tmp.unlink(missing_ok=True)
    note = f" ({spec(dataset).note})" if spec(dataset).note else ""
    if not spec(dataset).urls:  # no host has it: it is built locally
        note += f"; or build it into {BUILT / dataset}/ with `make proxy`"
    raise NormlabError(
        f"{dataset}/{name}: no source worked; tried: {'; '.join(tried) or 'nothing'}. "
        f"Set {MIRROR_ENV} to a folder or URL laid out <mirror>/{dataset}/{name}{note}"
    )


def _check_member(archive: Path, member: tarfile.TarInfo) -> bool:
    """True for a file to unpack, False for the archive's own folder; a one-line error for
    anything else."""
    name = member.name
    if name.startswith("/") or Path(name).is_absolute():
        problem = "absolute path"
    elif ".." in Path(name).parts:
        problem = "path with '..'"
    elif member.isdir() and name.rstrip("/") == CIFAR_DIR:
        return False
    elif not member.isfile():
        problem = (
            "link or special file"
            if (member.issym() or member.islnk() or member.isdev() or member.isfifo())
            else "unexpected folder"
        )
    elif name not in CIFAR_ALLOWED:
        problem = "unexpected member"
    else:
        return True
    raise NormlabError(
        f"{archive}: refusing member {name!r} ({problem}); expected only "
        f"{CIFAR_DIR}/ with {', '.join(CIFAR_MEMBERS)}, readme.html"
    )


def unpack_cifar(archive: Path, dest: Path) -> list[str]:
    """Unpack the CIFAR-10 binary batches from `archive` into `dest` (flat); return their names.

    One streaming pass, member by member against an allow-list, into a temp folder beside
    `dest`: files move into place only after the whole archive passed, so a malicious or
    truncated archive leaves `dest` as it was.
    """
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.unpack.")
    )  # outside the DVC output
    try:
        try:
            with tarfile.open(archive, "r|gz") as tar:
                for member in tar:
                    base = Path(member.name).name
                    if _check_member(archive, member) and base in CIFAR_MEMBERS:
                        with tar.extractfile(member) as src, open(staging / base, "wb") as out:
                            shutil.copyfileobj(src, out)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise NormlabError(f"{archive}: not a readable tar.gz archive ({err})") from None
        missing = [name for name in CIFAR_MEMBERS if not (staging / name).exists()]
        if missing:
            raise NormlabError(
                f"{archive}: missing {', '.join(f'{CIFAR_DIR}/{m}' for m in missing)}"
            )
        for name in CIFAR_MEMBERS:
            os.replace(staging / name, dest / name)
        return list(CIFAR_MEMBERS)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download(dataset: str, dest: Path) -> list[str]:
    """Verified files of `dataset` in `dest` (an archive also unpacked); one line per file saying
    whence."""
    lines = []
    for name in spec(dataset).files:
        lines.append(f"{dest / name}  ← {fetch(dataset, name, dest / name)}")
        if spec(dataset).format == "cifar":
            lines += [
                f"{dest / member}  ← unpacked from {name}"
                for member in unpack_cifar(dest / name, dest)
            ]
    return lines
