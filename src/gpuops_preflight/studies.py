"""Persistent Optuna studies for step 1: one named study that every run adds to (docs/OPTUNA.md).

``open_study(name)`` loads the study when it exists and creates it when not, in Optuna's RDB
storage: a SQLite file by default (``$GPUOPS_PREFLIGHT_STUDY_DB``, else
``~/.local/share/gpuops-preflight/optuna.db``), or a PostgreSQL URL
(``postgresql+psycopg://user@host/db``) when workers on several machines run trials of one study
(Optuna's own distributed mode: they share it through the database). Warm start enqueues the
best parameters found so far as a trial waiting in the study, at most one however many workers
open it at once. ``import_legacy_studies`` copies the trials of the old ``window_opt_<unix time>``
studies into the named one, once.

Every wait on the storage is bounded by ``timeout``: connecting, the lock that serialises opens
(a file lock beside a SQLite file, a PostgreSQL advisory lock), and each statement (SQLite's busy
timeout, PostgreSQL's ``lock_timeout`` and ``statement_timeout``). A storage that is down or
locked raises ``StudyError`` with a one-line message that names it (password hidden).

Optuna, SQLAlchemy and psycopg are the package's ``[study]`` extra: imported only here, when called.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from typing import Any

from .collection import module_utils

LOG = logging.getLogger("gpuops_preflight.studies")
STUDY_DB_ENV = "GPUOPS_PREFLIGHT_STUDY_DB"
DEFAULT_TIMEOUT = 30.0
LEGACY_PATTERN = re.compile(r"^window_opt_(\d+)$")
WARM_START_ATTR = "gpuops_warm_start"      # user attr of an enqueued warm-start trial: the best trial's number
LEGACY_ATTR = "gpuops_legacy_source"       # user attr of an imported trial: "<old study>#<its number>"
MAX_NAME = 512                             # Optuna's study_name column
# The PostgreSQL advisory lock (one per database) that serialises opens and imports.
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"gpuops_preflight.studies").digest()[:8], "big", signed=True)
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class StudyError(RuntimeError):
    """The study cannot be opened or used: Optuna missing, storage down or locked, no such study."""


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise StudyError("Optuna is not installed for this Python (%s): pip install 'gpuops-preflight[study]'"
                         % exc) from exc
    return optuna


def default_storage() -> str:
    """``sqlite:///`` + ``$GPUOPS_PREFLIGHT_STUDY_DB``, else ``$XDG_DATA_HOME/gpuops-preflight/optuna.db``."""
    path = os.environ.get(STUDY_DB_ENV, "").strip()
    if not path:
        data = os.environ.get("XDG_DATA_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".local", "share")
        path = os.path.join(data, "gpuops-preflight", "optuna.db")
    return "sqlite:///" + os.path.abspath(os.path.expanduser(path))


# libpq takes a password as a query parameter too (password=, sslpassword=)
_QUERY_SECRET = re.compile(r"([?&][^=&]*password=)([^&]*)", re.IGNORECASE)


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password of ``user:PASSWORD@host`` is in ``url``: from the first ":" after the scheme to the
    last "@" (a password may hold "/", "@" or "?": hiding too much of an odd URL is safe, a part of a
    password is not). A URL without "://" (a typo) is read the same way from its start."""
    start = url.index("://") + 3 if "://" in url else 0
    at = url.rfind("@")
    colon = url.find(":", start)
    return (colon + 1, at) if start <= colon < at else None


def shown(url: str) -> str:
    """The storage URL with its passwords hidden, for messages and --json."""
    span = _password_span(url)
    if span:
        url = url[:span[0]] + "***" + url[span[1]:]
    return _QUERY_SECRET.sub(r"\1***", url)


def scrubbed(text: str, url: str) -> str:
    """``text`` (a driver's or SQLAlchemy's message) with every password ``url`` carries replaced by ***,
    as written and percent-decoded."""
    from urllib.parse import unquote
    span = _password_span(url)
    secrets = [url[span[0]:span[1]]] if span else []
    secrets += [m.group(2) for m in _QUERY_SECRET.finditer(url)]
    for secret in sorted({form for raw in secrets if raw for form in (raw, unquote(raw))}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _first_line(exc: BaseException) -> str:
    """The first line of the deepest cause (the driver's own words, not Optuna's or SQLAlchemy's wrapping)."""
    seen = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    for candidate in reversed(seen):
        text = str(candidate).strip()
        if text:
            return text.splitlines()[0][:300]
    return type(exc).__name__


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise StudyError("the study name must be a non-empty text, got %r" % (name,))
    # printable: no control, format (bidi overrides), line-separator or surrogate characters (what an
    # undecodable byte in argv becomes), which the database cannot store or a message cannot show
    if len(name) > MAX_NAME or not name.isprintable() or name != name.strip():
        raise StudyError("the study name %r is not usable: at most %d printable characters, no spaces at either "
                         "end" % (name[:80], MAX_NAME))
    return name


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise StudyError("timeout must be a number of seconds > 0, got %r" % (timeout,))
    return float(timeout)


class _Storage:
    """One RDB storage: its URL, the dialect, the engine options that bound every wait."""

    def __init__(self, url: str | None, timeout: float) -> None:
        self.url = url if url is not None else default_storage()
        if not isinstance(self.url, str) or "://" not in self.url:
            raise StudyError("storage must be an Optuna storage URL such as sqlite:////path/optuna.db or "
                             "postgresql+psycopg://user@host/db, got %r" % (shown(self.url),))
        self.shown = shown(self.url)
        self.dialect = self.url.split("://", 1)[0].split("+", 1)[0].lower()
        self.timeout = timeout
        self.sqlite_path: str | None = None
        if self.dialect == "sqlite":
            path = self.url.split("://", 1)[1]
            if path and not path.startswith("/"):
                # a host or user part (sqlite://user:pw@/x.db) would be read as a relative path: a folder named
                # after it, the password in its name
                raise StudyError("storage %s: a SQLite URL has no host or user part: sqlite:////absolute/path.db "
                                 "or sqlite:///relative/path.db" % self.shown)
            path = path[1:]  # sqlite:///rel or sqlite:////abs
            self.sqlite_path = None if path in ("", ":memory:") or path.startswith("file:") else path
        elif self.dialect not in ("postgresql",):
            raise StudyError("storage %s: only sqlite and postgresql storages are supported here (the lock that "
                             "makes warm start and imports safe is written for those two)" % self.shown)
        else:
            self._check_authority()

    def _check_authority(self) -> None:
        """An "@" in a password must be written %40: SQLAlchemy ends the password at the first "@" and takes
        the rest of it for the host, which the driver then names in its error (a part of the password)."""
        try:
            from sqlalchemy.engine import make_url
        except ImportError:
            return  # _optuna() says how to install the study extra
        try:
            host = make_url(self.url).host or ""
        except Exception as exc:  # noqa: BLE001 -- SQLAlchemy's ArgumentError, a bad port's ValueError
            raise StudyError("storage %s: not a usable URL: %s" % (self.shown, scrubbed(_first_line(exc), self.url))) \
                from None
        if "@" in host:
            raise StudyError("storage %s: the user part holds an \"@\" of its own: percent-encode it in the "
                             "password (%%40), or keep the password in ~/.pgpass" % self.shown)

    def engine_kwargs(self) -> dict:
        seconds = max(1, int(math.ceil(self.timeout)))
        if self.dialect == "sqlite":
            return {"connect_args": {"timeout": self.timeout}}
        millis = int(self.timeout * 1000)
        return {"connect_args": {"connect_timeout": seconds,
                                 "options": "-c lock_timeout=%d -c statement_timeout=%d" % (millis, 2 * millis)},
                "pool_pre_ping": True, "pool_timeout": self.timeout}

    def fail(self, what: str, exc: BaseException) -> StudyError:
        reason = scrubbed(_first_line(exc), self.url)  # a driver may repeat what it was given
        return StudyError("optuna storage %s: %s: %s (timeout %g s)" % (self.shown, what, reason, self.timeout))

    @contextlib.contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Serialise opens and imports on this storage (all study names): within this process, and across
        processes through a file lock beside the SQLite file or a PostgreSQL advisory lock."""
        with _THREAD_LOCKS_GUARD:
            local = _THREAD_LOCKS.setdefault(self.url, threading.Lock())
        deadline = time.monotonic() + self.timeout
        if not local.acquire(timeout=self.timeout):
            raise StudyError("optuna storage %s: %s: another thread of this process held the study lock for more "
                             "than %g s" % (self.shown, what, self.timeout))
        try:
            if self.dialect == "sqlite":
                with self._file_lock(what, deadline):
                    yield
            else:
                with self._advisory_lock(what, deadline):
                    yield
        finally:
            local.release()

    @contextlib.contextmanager
    def _file_lock(self, what: str, deadline: float) -> Iterator[None]:
        if self.sqlite_path is None:  # in memory: this process only
            yield
            return
        folder = os.path.dirname(os.path.abspath(self.sqlite_path))
        try:
            os.makedirs(folder, exist_ok=True)
            fd = module_utils("_files").lock_exclusive(os.path.abspath(self.sqlite_path) + ".lock",
                                                       max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise StudyError("optuna storage %s: %s: another process held the study lock (%s.lock) for "
                             "more than %g s" % (self.shown, what, self.sqlite_path, self.timeout)) from None
        except OSError as exc:
            raise self.fail("%s: cannot create its lock file" % what, exc) from exc
        try:
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _advisory_lock(self, what: str, deadline: float) -> Iterator[None]:
        import sqlalchemy
        try:
            engine = self.engine()
            conn = engine.connect()
        except Exception as exc:  # noqa: BLE001 -- any driver error: the storage is unusable
            raise self.fail("%s: cannot connect" % what, exc) from exc
        try:
            try:
                while not conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar():
                    conn.rollback()
                    if time.monotonic() >= deadline:
                        raise StudyError("optuna storage %s: %s: another worker held the study lock for more than "
                                         "%g s" % (self.shown, what, self.timeout))
                    time.sleep(0.05)
                conn.commit()
            except StudyError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise self.fail("%s: cannot take the study lock" % what, exc) from exc
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                    conn.commit()
        finally:
            conn.close()
            engine.dispose()

    def engine(self) -> Any:
        """A SQLAlchemy engine without a pool, its connects bounded by the timeout (for our own statements)."""
        import sqlalchemy
        from sqlalchemy.pool import NullPool
        return sqlalchemy.create_engine(self.url, poolclass=NullPool, connect_args=self.engine_kwargs()["connect_args"])

    def _check_file(self, create: bool) -> None:
        """A SQLite storage's file: made later when missing and ``create``; refused when missing and not, or
        when it is a folder, a FIFO, a device (SQLite's own words for them are "unable to open database
        file" and "disk I/O error")."""
        path = os.path.abspath(self.sqlite_path)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            if not create:
                raise StudyError("optuna storage %s: no such database file (no study was ever opened there)"
                                 % self.shown) from None
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            except OSError as exc:
                raise self.fail("cannot create the database's folder", exc) from exc
            return
        except OSError as exc:
            raise self.fail("cannot read the database file", exc) from exc
        if not stat.S_ISREG(mode):
            raise StudyError("optuna storage %s: %s is %s, not a database file"
                             % (self.shown, path, module_utils("_files").kind(mode)))

    def _require_tables(self) -> None:
        """Reading must not write: Optuna creates its tables in any database it is given (another
        program's, an empty file), so a storage without them is refused before Optuna sees it."""
        try:
            engine = self.engine()
            try:
                import sqlalchemy
                tables = set(sqlalchemy.inspect(engine).get_table_names())
            finally:
                engine.dispose()
        except Exception as exc:  # noqa: BLE001 -- any driver error: the storage is unusable
            raise self.fail("cannot open", exc) from exc
        if not {"studies", "version_info"} <= tables:
            raise StudyError("optuna storage %s: not an Optuna storage (no Optuna tables: no study was ever "
                             "opened there); left as it was" % self.shown)

    def rdb(self, create: bool = True, **kwargs: Any) -> Any:
        """Optuna's RDBStorage; ``create``: its tables are created when missing (call it under ``exclusive``),
        else a storage without them is refused and nothing is written."""
        optuna = _optuna()
        if self.sqlite_path is not None:
            self._check_file(create)
        if not create:
            self._require_tables()
        try:
            return optuna.storages.RDBStorage(self.url, engine_kwargs=self.engine_kwargs(),
                                              skip_table_creation=not create, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- sqlalchemy, the driver, Optuna's own: all mean "unusable"
            raise self.fail("cannot open", exc) from exc


def _guarded(storage: _Storage, what: str):
    """Turn the storage errors of a block into StudyError (StudyError itself passes)."""
    @contextlib.contextmanager
    def block() -> Iterator[None]:
        try:
            yield
        except StudyError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise storage.fail(what, exc) from exc
    return block()


def open_study(name: str, storage: str | None = None, direction: str = "minimize", warm_start: bool = True,
               timeout: float = DEFAULT_TIMEOUT, sampler: Any = None, pruner: Any = None,
               heartbeat_interval: int | None = None, grace_period: int | None = None) -> Any:
    """The named study (an ``optuna.Study``), loaded when it exists, created when not.

    ``storage``: an Optuna storage URL (``sqlite:///...``, ``postgresql+psycopg://...``), or None for
    the default SQLite file. ``direction`` is used only when the study is created (an existing one
    keeps its own). ``warm_start``: when the study has a best trial, its parameters wait in the
    study as the next trial, once per new best: not when a waiting or running trial already has
    them, nor when they were carried in before and that trial did not fail (checked and enqueued
    under the storage's lock, so workers opening the study at once enqueue it once).
    ``heartbeat_interval``/``grace_period``: Optuna's heartbeat (a dead worker's running trial is
    failed), recommended when workers run on several machines. Raises StudyError.
    """
    name = _check_name(name)
    if direction not in ("minimize", "maximize"):
        raise StudyError("direction must be 'minimize' or 'maximize', got %r" % (direction,))
    st = _Storage(storage, _check_timeout(timeout))
    optuna = _optuna()
    kwargs = {k: v for k, v in (("heartbeat_interval", heartbeat_interval), ("grace_period", grace_period))
              if v is not None}
    with st.exclusive("opening study %r" % name):
        rdb = st.rdb(**kwargs)
        with _guarded(st, "opening study %r" % name):
            study = optuna.create_study(storage=rdb, study_name=name, direction=direction, load_if_exists=True,
                                        sampler=sampler, pruner=pruner)
            if warm_start:
                _warm_start(optuna, study, rdb)
    return study


def _warm_start(optuna: Any, study: Any, rdb: Any) -> int | None:
    """Carry the best parameters into the study as a waiting trial, once per new best.

    Nothing is enqueued when a waiting or running trial already has them, or when they were carried
    in before (the study's ``gpuops_warm_start`` attribute) and that trial did not fail: the same
    best is not evaluated again and again by every worker that opens the study. Returns the number
    of the trial that carries them, or None.
    """
    if len(study.directions) != 1:
        LOG.info("study %s has several objectives: no warm start", study.study_name)
        return None
    try:
        best = rdb.get_best_trial(study._study_id)
    except ValueError:  # no completed trial yet
        return None
    if not best.params:
        return None
    states = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    for trial in rdb.get_all_trials(study._study_id, deepcopy=False, states=states):
        if trial.system_attrs.get("fixed_params", trial.params) == best.params:
            return trial.number
    last = rdb.get_study_user_attrs(study._study_id).get(WARM_START_ATTR)
    if isinstance(last, dict) and last.get("params") == best.params and isinstance(last.get("trial"), int):
        try:
            carried = rdb.get_trial(rdb.get_trial_id_from_study_id_trial_number(study._study_id, last["trial"]))
        except KeyError:
            carried = None
        if carried is not None and carried.state != optuna.trial.TrialState.FAIL:
            return carried.number
    # What Study.enqueue_trial does, on the storage itself: it gives back the new trial's id.
    template = optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING,
                                         system_attrs={"fixed_params": dict(best.params)},
                                         user_attrs={WARM_START_ATTR: best.number})
    number = rdb.get_trial_number_from_id(rdb.create_new_trial(study._study_id, template_trial=template))
    study.set_user_attr(WARM_START_ATTR, {"params": dict(best.params), "best": best.number, "trial": number})
    LOG.info("study %s: trial %d waits with the best parameters (of trial %d, value %s)", study.study_name, number,
             best.number, best.value)
    return number


def import_legacy_studies(name: str, storage: str | None = None, source_storage: str | None = None,
                          direction: str = "minimize", timeout: float = DEFAULT_TIMEOUT,
                          pattern: re.Pattern[str] = LEGACY_PATTERN) -> dict:
    """Copy the finished trials of the old ``window_opt_<unix time>`` studies into the study ``name``.

    ``source_storage``: where the old studies are (default: ``storage``). Idempotent: each copied
    trial carries ``gpuops_legacy_source = "<old study>#<number>"``, and a trial already copied is
    never copied again. Old studies with another direction or several objectives are skipped with
    the reason; trials that never finished (waiting, running) are not copied. Returns
    ``{study, imported: {old: n}, already: n, unfinished: n, incompatible: n, skipped: {old: reason}}``.
    """
    name = _check_name(name)
    if direction not in ("minimize", "maximize"):
        raise StudyError("direction must be 'minimize' or 'maximize', got %r" % (direction,))
    st = _Storage(storage, _check_timeout(timeout))
    source = st if source_storage is None else _Storage(source_storage, st.timeout)
    optuna = _optuna()
    report: dict[str, Any] = {"study": name, "imported": {}, "already": 0, "unfinished": 0, "incompatible": 0,
                              "skipped": {}}
    with st.exclusive("importing into study %r" % name):
        target_rdb = st.rdb()
        source_rdb = target_rdb if source is st else source.rdb()
        with _guarded(st, "importing into study %r" % name):
            target = optuna.create_study(storage=target_rdb, study_name=name, direction=direction,
                                         load_if_exists=True)
            done = {t.user_attrs.get(LEGACY_ATTR) for t in target.get_trials(deepcopy=False)}
            legacy = [(int(m.group(1)), old) for old in optuna.get_all_study_names(source_rdb)
                      for m in [pattern.match(old)] if m and not (source is st and old == name)]
            loaded = [(old, optuna.load_study(study_name=old, storage=source_rdb)) for _stamp, old in sorted(legacy)]
            space = _search_space([target] + [study for _old, study in reversed(loaded)])
            for old, study in loaded:  # oldest first: trial numbers follow the runs
                _import_one(optuna, old, study, target, done, space, report)
    return report


def _search_space(ordered: list) -> dict:
    """Each parameter's distribution as the study has it, else as the newest old study that has it
    (an old study whose search space differs gives way to the newer ones, not the other way round)."""
    space: dict = {}
    for study in ordered:
        for trial in study.get_trials(deepcopy=False):
            for param, dist in trial.distributions.items():
                space.setdefault(param, dist)
    return space


def _fits(optuna: Any, trial: Any, space: dict) -> bool:
    for param, dist in trial.distributions.items():
        try:
            optuna.distributions.check_distribution_compatibility(space.get(param, dist), dist)
        except ValueError:
            return False
    return True


def _import_one(optuna: Any, old: str, study: Any, target: Any, done: set, space: dict, report: dict) -> None:
    if len(study.directions) != 1 or study.direction != target.direction:
        report["skipped"][old] = "its direction (%s) is not the study's (%s)" % (
            ", ".join(d.name.lower() for d in study.directions), target.direction.name.lower())
        return
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    count = 0
    for trial in study.get_trials(deepcopy=False):
        key = "%s#%d" % (old, trial.number)
        if key in done:
            report["already"] += 1
            continue
        if trial.state not in finished:
            report["unfinished"] += 1
            continue
        if not _fits(optuna, trial, space):
            report["incompatible"] += 1
            LOG.warning("trial %s not imported: its search space differs from the study's", key)
            continue
        copied = copy.deepcopy(trial)
        copied.user_attrs = dict(copied.user_attrs, **{LEGACY_ATTR: key})
        try:
            target.add_trial(copied)
        except ValueError as exc:  # a parameter with another distribution than the study's
            report["incompatible"] += 1
            LOG.warning("trial %s not imported: %s", key, exc)
            continue
        done.add(key)
        count += 1
    report["imported"][old] = count


def describe_study(name: str, storage: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """What ``gpuops-preflight study show`` prints: ``{study, storage, direction, trials: {state: n}, best,
    waiting: [{number, params, warm_start}], legacy_trials}``. StudyError when the study does not exist."""
    name = _check_name(name)
    st = _Storage(storage, _check_timeout(timeout))
    optuna = _optuna()
    rdb = st.rdb(create=False)
    with _guarded(st, "reading study %r" % name):
        names = optuna.get_all_study_names(rdb)
        if name not in names:
            printable = module_utils("_values").printable
            listed = ", ".join(printable(other, 80) for other in sorted(names)[:20]) or "none"
            raise StudyError("optuna storage %s: no study named %r (studies there: %s)" % (st.shown, name, listed))
        study = optuna.load_study(study_name=name, storage=rdb)
        trials = study.get_trials(deepcopy=False)
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
        best = None
        if len(study.directions) == 1 and counts.get("complete"):
            bt = study.best_trial
            best = {"number": bt.number, "value": bt.value, "params": bt.params}
        waiting = [{"number": t.number, "params": t.system_attrs.get("fixed_params", {}),
                    "warm_start": t.user_attrs.get(WARM_START_ATTR)}
                   for t in trials if t.state == optuna.trial.TrialState.WAITING]
        return {"study": name, "storage": st.shown,
                "direction": ", ".join(d.name.lower() for d in study.directions),
                "trials": counts, "total": len(trials), "best": best, "waiting": waiting,
                "legacy_trials": sum(1 for t in trials if LEGACY_ATTR in t.user_attrs)}
