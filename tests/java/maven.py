"""Java artifacts for tests, resolved by Maven into a cache outside git, and the JVM to run them on.

Each set of artifacts is a tiny Maven project, ``tests/java/<set>/pom.xml``, that pins what a test needs
(the Iceberg REST Compatibility Kit, a Spark or Trino client, ...). It is never built: ``resolve(set)``
runs ``mvn dependency:copy-dependencies`` on it once and returns a directory of jars, reused by every
later run while the pom's bytes are unchanged::

    from tests.java import maven
    jars = maven.resolve("rck")                      # Path of a directory of *.jar
    java = maven.java_executable(17)                 # Path of a Java 17 ``java``
    subprocess.run([str(java), "-cp", maven.classpath("rck"), "org.junit.platform.console.ConsoleLauncher", ...])

The cache is ``$ICESHELF_JAVA_CACHE/<set>-<first 16 hex digits of the pom's sha256>`` (default
``~/.cache/iceshelf/java``). A directory there is complete by construction: Maven copies into a temporary
sibling that is renamed into place only after Maven succeeded, so a crash or an interrupted run leaves no
half cache (only a ``.tmp-`` directory, which a later run removes). A set may also have a few Java
sources of its own (``tests/java/<set>/src``, e.g. a subclass of a test class): ``classpath(set)``
compiles them with ``javac`` into the same cache, keyed by their content. Maven's own repository (``~/.m2``)
is used as usual, so a new pom mostly reuses jars already downloaded. Nothing here is ever in git.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

JAVA_DIR = Path(__file__).resolve().parent
CACHE_ENV = "ICESHELF_JAVA_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "iceshelf" / "java"
# Where each major version of Java is looked for, after $JAVA_HOME_<major> and the ``java`` on PATH.
JVM_DIRS = {
    17: ["/usr/lib/jvm/java-17-openjdk-amd64", "/usr/lib/jvm/temurin-17-jdk-amd64"],
    21: ["/usr/lib/jvm/java-21-openjdk-amd64", "/usr/lib/jvm/temurin-21-jdk-amd64"],
    25: ["/usr/lib/jvm/temurin-25-jdk-amd64", "/usr/lib/jvm/java-25-openjdk-amd64"],
}
RESOLVE_TIMEOUT = 900  # seconds: a cold resolve downloads ~80 MB from Maven Central
_STALE_TMP = 3600  # seconds after which another run's temporary directory is taken as crashed


class JavaToolError(RuntimeError):
    """Maven or Java is missing, or Maven failed: the message says what to do."""


def cache_root() -> Path:
    return Path(os.environ[CACHE_ENV]).expanduser() if os.environ.get(CACHE_ENV) else DEFAULT_CACHE


def pom_path(artifact_set: str) -> Path:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", artifact_set):
        raise ValueError(f"artifact set names are lower-case folder names under {JAVA_DIR}: {artifact_set!r}")
    pom = JAVA_DIR / artifact_set / "pom.xml"
    if not pom.is_file():
        raise JavaToolError(f"no artifact set {artifact_set!r}: {pom} does not exist")
    return pom


def cache_dir(artifact_set: str) -> Path:
    """Where ``resolve`` puts (or finds) this set's jars: named by the pom's content, so an edit re-resolves."""
    digest = hashlib.sha256(pom_path(artifact_set).read_bytes()).hexdigest()[:16]
    return cache_root() / f"{artifact_set}-{digest}"


def mvn_executable() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JavaToolError(
            "`mvn` is not on PATH: the Java-based tests resolve their jars with Maven "
            "(Debian: `apt-get install maven`; it needs a JDK 17, `apt-get install openjdk-17-jdk-headless`)"
        )
    return mvn


def resolve(artifact_set: str) -> Path:
    """The directory of jars that ``tests/java/<artifact_set>/pom.xml`` declares, resolving it on first use."""
    target = cache_dir(artifact_set)
    if target.is_dir():
        return target
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root)
    mvn = mvn_executable()
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{target.name}-"))
    try:
        command = [
            mvn, "-q", "-B", "-f", str(pom_path(artifact_set)),
            "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT, cwd=tmp)
        except subprocess.TimeoutExpired as e:
            raise JavaToolError(f"Maven did not resolve {artifact_set!r} in {RESOLVE_TIMEOUT}s: {' '.join(command)}") from e
        if done.returncode != 0 or not any(tmp.glob("*.jar")):
            output = (done.stdout + done.stderr).strip().splitlines()
            raise JavaToolError(
                f"Maven could not resolve {artifact_set!r} (exit {done.returncode}): {' '.join(command)}\n"
                + "\n".join(output[-40:])
            )
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not a concurrent run that got there first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def jars(artifact_set: str) -> list[Path]:
    return sorted(resolve(artifact_set).glob("*.jar"))


def classpath(artifact_set: str) -> str:
    """The set's jars and, if it has Java sources (``tests/java/<set>/src``), their compiled classes first."""
    entries = [str(jar) for jar in jars(artifact_set)]
    if sources(artifact_set):
        entries.insert(0, str(compile_sources(artifact_set)))
    return os.pathsep.join(entries)


def sources(artifact_set: str) -> list[Path]:
    return sorted((pom_path(artifact_set).parent / "src").rglob("*.java"))


def compile_sources(artifact_set: str, major: int = 17) -> Path:
    """``tests/java/<set>/src/**/*.java`` compiled against the set's jars, cached like ``resolve``'s jars
    (named by the hash of the pom and every source), into a directory of classes."""
    files = sources(artifact_set)
    digest = hashlib.sha256(pom_path(artifact_set).read_bytes())
    for source in files:
        digest.update(str(source.relative_to(JAVA_DIR)).encode() + b"\0" + source.read_bytes() + b"\0")
    target = cache_root() / f"{artifact_set}-classes-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    javac = java_executable(major).parent / "javac"
    if not javac.is_file():
        raise JavaToolError(f"no javac beside {javac.parent / 'java'}: install the JDK, not only the JRE")
    dependencies = os.pathsep.join(str(jar) for jar in jars(artifact_set))
    tmp = Path(tempfile.mkdtemp(dir=cache_root(), prefix=f".tmp-{target.name}-"))
    try:
        command = [str(javac), "-nowarn", "-encoding", "UTF-8", "--release", str(major), "-cp", dependencies, "-d", str(tmp)]
        done = subprocess.run(command + [str(f) for f in files], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise JavaToolError(f"javac failed on {artifact_set!r} (exit {done.returncode}):\n{done.stdout}{done.stderr}")
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_tmp(root: Path) -> None:
    now = time.time()
    for leftover in root.glob(".tmp-*"):
        try:
            if now - leftover.stat().st_mtime > _STALE_TMP:
                shutil.rmtree(leftover, ignore_errors=True)
        except FileNotFoundError:
            pass


def java_major_version(java: Path | str) -> int | None:
    try:
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major  # "1.8.0" is Java 8


def java_executable(major: int = 17) -> Path:
    """A ``java`` of exactly this major version: $JAVA_HOME_<major>, then the PATH's, then /usr/lib/jvm."""
    candidates: list[Path] = []
    if os.environ.get(f"JAVA_HOME_{major}"):
        candidates.append(Path(os.environ[f"JAVA_HOME_{major}"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    candidates += [Path(d) / "bin" / "java" for d in JVM_DIRS.get(major, [])]
    for candidate in candidates:
        if candidate.is_file() and java_major_version(candidate) == major:
            return candidate
    raise JavaToolError(
        f"no Java {major} found (looked at $JAVA_HOME_{major}, `java` on PATH, {', '.join(JVM_DIRS.get(major, []))}); "
        f"Debian: `apt-get install openjdk-{major}-jdk-headless`"
    )


if __name__ == "__main__":  # `python -m tests.java.maven rck` resolves a set and prints where it is
    import sys

    for name in sys.argv[1:] or ["rck"]:
        started = time.monotonic()
        where = resolve(name)
        print(f"{name}: {where} ({len(list(where.glob('*.jar')))} jars, {time.monotonic() - started:.1f}s)")
