"""`--out s3://bucket/prefix` (any pyarrow file-system URI): Ray's storage off the driver, the rest on it.

Ray 2.x keeps an experiment where every node can reach it: its
`storage_path` takes a cloud URI and reads and writes it through pyarrow's
file systems (credentials and endpoint from the usual environment, e.g.
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, on the
driver and on every node). With a URI `--out`:

- Ray's experiment state, every trial's checkpoints, `progress.csv`,
  TensorBoard files and final-stage outputs go to `URI/NAME/` (the final
  stage's Tuner to `URI/NAME/final*`);
- the leaderboards, the Optuna journal, the prepared-data file, the run
  settings, `progress.log`, `concurrency.json` and `report.html` are written
  on the driver, in `--driver-dir/NAME` (default `results/NAME`), and
  copied to `URI/NAME/` when the run ends or is interrupted (`upload`); the
  start-up line says so. `--resume` on a driver whose `--driver-dir` lacks
  the experiment (another machine, a lost disk) first copies them back from
  `URI/NAME/` (`download`). Trials on nodes that cannot read the driver's prepared-data
  file prepare their data themselves (`search.prepared`).

`probe` writes, reads back and deletes a marker under the URI: the driver
runs it before anything starts, and so does a task on every node
(`search.cluster_checks`), so that storage some node cannot write is
refused by name.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path

#: Driver-side files copied to the URI at the end of a run.
DRIVER_FILES = (
    "sedtune_run.json",
    "search.parquet",
    "final.parquet",
    "final_summary.parquet",
    "report.html",
    "progress.log",
    "concurrency.json",
    "optuna.journal",
    "final_state.json",
)


def is_uri(text: str | Path | None) -> bool:
    """A URI pyarrow resolves to a file system other than the local one (s3://, gs://, hdfs://, ...)."""
    return text is not None and "://" in str(text) and not str(text).startswith("file://")


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *[p.strip("/") for p in parts if p]])


def probe(uri: str) -> str | None:
    """None when a marker can be written under `uri`, read back and deleted; else what failed."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # invalid URI, unknown scheme, missing credentials
        return f"cannot open {uri} ({type(exc).__name__}: {exc})"
    token = secrets.token_hex(8)
    marker = f"{path.rstrip('/')}/.sedtune-write-{token}"
    try:
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(marker) as stream:
            stream.write(token.encode())
        with fs.open_input_stream(marker) as stream:
            if stream.read().decode() != token:
                return f"{uri}: a marker read back differs from what was written"
        fs.delete_file(marker)
    except Exception as exc:
        return f"cannot write in {uri} ({type(exc).__name__}: {exc})"
    return None


def upload(local_dir: Path, uri: str, names: Iterable[str] = DRIVER_FILES) -> list[str]:
    """Copy the driver-side files of `local_dir` that exist to `uri` (same names); the names copied."""
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    fs.create_dir(path, recursive=True)
    local = pafs.LocalFileSystem()
    copied = []
    for name in names:
        source = Path(local_dir) / name
        if source.is_file():
            pafs.copy_files(
                str(source), f"{path.rstrip('/')}/{name}", source_filesystem=local, destination_filesystem=fs
            )
            copied.append(name)
    return copied


def download(uri: str, local_dir: Path, names: Iterable[str] = DRIVER_FILES) -> list[str]:
    """Copy the driver-side files that exist under `uri` into `local_dir` (created); the names copied."""
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    local = pafs.LocalFileSystem()
    wanted = [f"{path.rstrip('/')}/{name}" for name in names]
    found = {info.path for info in fs.get_file_info(wanted) if info.type == pafs.FileType.File}
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    copied = []
    for name, remote in zip(names, wanted):
        if remote in found:
            target = Path(local_dir) / name
            partial = target.with_name(target.name + ".part")
            pafs.copy_files(remote, str(partial), source_filesystem=fs, destination_filesystem=local)
            partial.replace(target)  # a file is there whole or not at all
            copied.append(name)
    return copied
