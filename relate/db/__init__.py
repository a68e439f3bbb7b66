"""Database access: the engine (relate.db.engine) and the models (relate.db.models).

Only relate/store, the migrations and the tests import the models.
"""

from relate.db.engine import configure, dispose, get_engine

__all__ = ["configure", "dispose", "get_engine"]
