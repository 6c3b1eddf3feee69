"""Every module's tables on one MetaData, for Alembic and key rotation."""

from nidaan.abdm import models as abdm_models  # noqa: F401
from nidaan.appointments import models as appointment_models  # noqa: F401
from nidaan.audit import models as audit_models  # noqa: F401
from nidaan.auth import models as auth_models  # noqa: F401
from nidaan.autoverify import models as autoverify_models  # noqa: F401
from nidaan.billing import models as billing_models  # noqa: F401
from nidaan.catalog import models as catalog_models  # noqa: F401
from nidaan.compliance import models as compliance_models  # noqa: F401
from nidaan.einvoice import models as einvoice_models  # noqa: F401
from nidaan.events import models as event_models  # noqa: F401
from nidaan.files import models as file_models  # noqa: F401
from nidaan.idempotency import models as idempotency_models  # noqa: F401
from nidaan.integration import models as integration_models  # noqa: F401
from nidaan.kit import sequences  # noqa: F401
from nidaan.kit.model_base import Base
from nidaan.notifications import models as notification_models  # noqa: F401
from nidaan.orders import models as order_models  # noqa: F401
from nidaan.patients import models as patient_models  # noqa: F401
from nidaan.payments import models as payment_models  # noqa: F401
from nidaan.qc import models as qc_models  # noqa: F401
from nidaan.reports import models as report_models  # noqa: F401
from nidaan.results import models as result_models  # noqa: F401
from nidaan.samples import models as sample_models  # noqa: F401
from nidaan.sync import capture as sync_capture  # noqa: F401  (change capture listeners)
from nidaan.sync import entities as sync_entities  # noqa: F401
from nidaan.sync import models as sync_models  # noqa: F401
from nidaan.tenancy import models as tenancy_models  # noqa: F401

metadata = Base.metadata
