"""Every module's tables on one MetaData, for Alembic and key rotation."""

from nidaan.audit import models as audit_models  # noqa: F401
from nidaan.auth import models as auth_models  # noqa: F401
from nidaan.events import models as event_models  # noqa: F401
from nidaan.idempotency import models as idempotency_models  # noqa: F401
from nidaan.kit.model_base import Base
from nidaan.tenancy import models as tenancy_models  # noqa: F401

metadata = Base.metadata
