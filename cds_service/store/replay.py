"""JWT replay protection: each token id (``jti``) is accepted once per issuer, by any worker or replica."""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite

from .database import Database
from .tables import jwt_replay

JTI_PURGE_INTERVAL_S = 60.0  # expired JWT ids are deleted at most this often per process

# Built once: composing a statement costs SQLAlchemy more than running it (a JWT is checked on
# every hook call; building both statements per call was a fifth of the record: bench/README.md).
_PURGE_EXPIRED_JTI = jwt_replay.delete().where(jwt_replay.c.expires_at < bindparam("now"))


class JwtReplayStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._next_jti_purge = 0.0  # time.time() after which first_use deletes expired ids

    def first_use(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Record a JWT id; False if any worker or replica has already seen it (a replay).
        The primary key makes the check and the insert one atomic step in either database: the
        statement inserts the id, or takes over its row once that has expired, or does nothing.
        So expired rows need deleting only to keep the table small, not on every call (that
        was a second statement in every JWT-checked call).

        The commit does not wait for the disk (``Database.replay_engine``): waiting was half of a
        JWT-checked call's time on SQLite. A worker or service crash loses nothing; a crash of
        the PostgreSQL server, or a power cut or operating-system crash, can forget the ids of
        the last moments, and a token among them could then be replayed until it expires
        (minutes; it is bound to this endpoint's URL). Feedback and audit rows still wait."""
        now = time.time()
        with self.database.writing(self.database.replay_engine) as connection:
            if now >= self._next_jti_purge:
                connection.execute(_PURGE_EXPIRED_JTI, {"now": now})
                self._next_jti_purge = now + JTI_PURGE_INTERVAL_S
            recorded = connection.execute(
                _record_jti(connection.dialect.name),
                {"issuer": issuer[:500], "jti": jti[:200], "expires_at": expires_at, "now": now},
            )
            # A row back means recorded. Not rowcount: psycopg reports -1 for this statement,
            # which refused every token as a replay on PostgreSQL.
            return recorded.first() is not None


@cache
def _record_jti(dialect_name: str) -> Any:
    """Insert the id; on a clash, replace the row only if it has expired; return the row if either."""
    # Both dialects spell ``insert(...).on_conflict_do_update`` alike.
    dialect: Any = postgresql if dialect_name == "postgresql" else sqlite
    insert = dialect.insert(jwt_replay).values(
        issuer=bindparam("issuer"), jti=bindparam("jti"), expires_at=bindparam("expires_at")
    )
    return insert.on_conflict_do_update(
        index_elements=[jwt_replay.c.issuer, jwt_replay.c.jti],
        set_={"expires_at": insert.excluded.expires_at},
        where=jwt_replay.c.expires_at < bindparam("now"),
    ).returning(jwt_replay.c.jti)
