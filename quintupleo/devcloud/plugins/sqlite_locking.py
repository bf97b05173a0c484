"""Make SQLite safe for several OpenStack processes writing one database file.

With oslo.db's plain BEGIN, two writers that both start by reading deadlock on the lock upgrade and
one fails at once with "database is locked". BEGIN IMMEDIATE takes the write lock up front, and the
busy timeout makes the other writer wait for it instead of failing.

Imported at interpreter start (a .pth file) of every process in the services' venv.
"""

BUSY_TIMEOUT_MS = 60000


def _install() -> None:
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
    except ImportError:  # the venv is still being built
        return

    @event.listens_for(Engine, "connect")
    def _busy_timeout(dbapi_con, _record):
        if type(dbapi_con).__module__.startswith("sqlite3"):
            dbapi_con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    @event.listens_for(Engine, "begin")
    def _begin_immediate(conn):
        # Engines set up by oslo.db turn pysqlite's own BEGIN off (isolation_level None) and emit
        # BEGIN themselves unless "in_transaction" is marked; class listeners run first, so we
        # emit BEGIN IMMEDIATE and set the mark. Other engines are left as they are.
        if conn.dialect.name != "sqlite" or "in_transaction" in conn.info:
            return
        if conn.connection.dbapi_connection.isolation_level is not None:
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.info["in_transaction"] = True


_install()
