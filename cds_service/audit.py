"""The audit writer: assessment audit rows are written off the request path, in batches.

A synchronous SQLite commit per hook call cost more than the assessment itself, and one
background commit per row capped the audit below the service's rate: under load rows queued up
and were dropped. A one-row transaction also costs far more CPU (the GIL the hook calls need) than
a row of a multi-row one (figures: bench/README.md). So one thread sleeps ``linger`` seconds after the
first waiting row, takes up to ``batch`` rows and writes them in one transaction.

While the database is down the writer holds its batch and tries again, waiting ``retry_delay``
seconds, doubled up to ``max_retry_delay``: an outage loses no audit row as long as the rows
arriving meanwhile fit in the queue. Bounded: past ``limit`` waiting rows new ones are dropped with
a warning, never queued without bound. Rows still waiting at exit are written before the process
ends, or, with the database still down, counted in the log as lost.
"""

from __future__ import annotations

import atexit
import logging
import queue
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from . import observability
from .store import AssessmentAudit, AuditLog, ModelInputs, StoreUnavailable
from .store.audit_log import EndpointEstimate, LabInput, ResistanceEstimate, SurvivalPointEstimate

if TYPE_CHECKING:
    from fhir_mappers.features import LabFeature
    from models.assessment import Assessment

log = logging.getLogger(__name__)

_STOP = object()


class AuditWriter:
    def __init__(
        self,
        store: AuditLog,
        *,
        limit: int = 1000,
        batch: int = 200,
        linger: float = 0.1,
        retry_delay: float = 0.5,
        max_retry_delay: float = 5.0,
    ):
        self.store = store
        self.batch = batch
        self.linger = linger
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._queue: queue.Queue = queue.Queue(maxsize=limit)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        # Rows queued so far, and of those, how many are written or given up: feedback on a card
        # answered a moment ago waits for its row (see ``wait_written``).
        self._submitted = 0
        self._settled = 0
        self._progress = threading.Condition()

    def submit(self, record: AssessmentAudit) -> bool:
        """Queue one row; False (and a warning) when the queue is full."""
        self._start()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            log.warning("audit record dropped: writer queue full", extra={"hook_instance": str(record.hook_instance)})
            observability.observe_audit_dropped()
            return False
        with self._progress:
            self._submitted += 1
        observability.set_audit_queue_depth(self._queue.qsize())
        return True

    def wait_written(self, timeout: float) -> bool:
        """Wait until every row queued before this call is written or given up; False if that
        took longer than ``timeout`` seconds. Rows queued meanwhile are not waited for, so a
        busy writer does not hold the caller."""
        with self._progress:
            target = self._submitted
            return self._progress.wait_for(lambda: self._settled >= target, timeout)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every row queued so far is written or given up (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._queue.unfinished_tasks} audit rows still waiting after {timeout} s")
            time.sleep(0.005)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is waiting (one more try each if the database is down), then stop the thread."""
        if self._thread is None:
            return
        self._closing.set()  # ends a wait between retries
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("audit writer did not stop within %g s: %d rows waiting", timeout, self._queue.qsize())
            return
        self._thread.join(timeout)

    def _start(self) -> None:
        # Started on first use, not in __init__: the app may be built before gunicorn forks.
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _gather(self) -> list:
        """The next batch: the first row waited for, then whatever came while sleeping ``linger``.

        Sleeping then draining, rather than waiting on each row: a thread woken per row asks for
        the GIL per row, and a busy worker then hands it over every few milliseconds (measured:
        the writer fell to ~200 rows/s and dropped rows while the hook calls slowed).
        """
        rows = [self._queue.get()]
        if rows[0] is not _STOP and self._queue.qsize() < self.batch:  # with a backlog, no wait
            time.sleep(self.linger)
        while len(rows) < self.batch and rows[-1] is not _STOP:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return rows

    def _run(self) -> None:
        while True:
            rows = self._gather()
            records = [row for row in rows if row is not _STOP]
            try:
                if records:
                    self._write(records)
            finally:
                for _ in rows:
                    self._queue.task_done()
                with self._progress:
                    self._settled += len(records)
                    self._progress.notify_all()
            if len(records) < len(rows):
                return

    def _write(self, records: list[AssessmentAudit]) -> None:
        """One batch in one transaction, tried again while the database is unavailable. The
        transaction stores all rows or none, and the store skips rows whose key it has already
        (a commit whose acknowledgement was lost), so a retry stores none twice."""
        delay = self.retry_delay
        while True:
            try:
                self.store.record_assessments(records)
                observability.observe_database(up=True)
                observability.set_audit_queue_depth(self._queue.qsize())
                return
            except StoreUnavailable:
                observability.observe_database(up=False)
                if self._closing.is_set():
                    log.error("%d audit record(s) lost: database unavailable at shutdown", len(records))
                    return
                log.warning("%d audit record(s) held: database unavailable, next try in %g s", len(records), delay)
                self._closing.wait(delay)
                delay = min(delay * 2, self.max_retry_delay)
            except Exception:  # a bug in one batch must not stop the audit for the worker's lifetime
                log.exception("%d audit record(s) not stored", len(records))
                return


_MARKERS = {
    "first_line": ("afp_over_400", "alt_over_40"),
    "second_line": ("afp_over_400", "alt_over_40", "tumour_size_over_5cm", "multiple_tumours"),
}
_FHIR_DATE = re.compile(r"[0-9T:.+Z-]{4,35}")


def model_use(assessment: Assessment | None) -> dict[str, Any]:
    """The audit fields of what the model used and predicted (``AssessmentAudit`` keywords):
    scenario, the binary markers and the AFP and ALT values, the resistance probability with its
    CI, and the survival estimates per arm. No assessment: the study had nothing to say ("other")."""
    if assessment is None:
        return {"scenario": "other"}
    scenario = assessment.scenario.value
    features = assessment.features
    markers: dict[str, bool | None] = {name: getattr(features, name).value for name in _MARKERS[scenario]}
    if scenario == "second_line":
        resistance_type = assessment.history.resistance_type.value
        markers["primary_resistance"] = None if resistance_type is None else resistance_type == "primary"
    values = {name: lab for name in ("afp", "alt") if (lab := _lab_input(getattr(features, name))) is not None}
    fields: dict[str, Any] = {
        "scenario": scenario,
        "inputs": ModelInputs(
            markers=markers,
            values=values,
            missing=[name for name, value in markers.items() if value is None],
            marginalised=assessment.survival.marginalised_covariates if assessment.survival else [],
        ),
    }
    if assessment.risk is not None:
        risk = assessment.risk
        fields["resistance"] = ResistanceEstimate(
            probability=risk.probability, ci_low=risk.ci_low, ci_high=risk.ci_high
        )
    if assessment.survival is not None:
        fields["survival"] = {
            arm: {
                endpoint: EndpointEstimate(
                    median_months=estimate.median_months,
                    median_ci=estimate.median_ci,
                    at_months={
                        month: SurvivalPointEstimate(survival=point.survival, low=point.low, high=point.high)
                        for month, point in estimate.survival_at.items()
                    },
                )
                for endpoint, estimate in (("pfs", assessment.survival.pfs[arm]), ("os", assessment.survival.os[arm]))
            }
            for arm in assessment.survival.pfs
        }
    return fields


def _lab_input(feature: LabFeature) -> LabInput | None:
    """The value as the model saw it (model unit), dated by the FHIR date the mapper used."""
    if feature.value is None:
        return None
    effective = feature.provenance.effective if feature.provenance else None
    comparator = feature.value.comparator
    return LabInput(
        value=feature.value.value,
        unit=feature.value.unit,
        comparator=comparator if comparator in ("<", "<=", ">=", ">") else None,
        effective=effective if effective and _FHIR_DATE.fullmatch(effective) else None,
    )
