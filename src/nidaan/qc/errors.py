from nidaan.kit.errors import Conflict, InvalidInput


class LotExpired(Conflict):
    code = "qc_lot_expired"
    title = "Control lot expired"


class LotNotLive(Conflict):
    code = "qc_lot_not_live"
    title = "Control lot is not in use"


class ControlIdTaken(Conflict):
    code = "qc_control_id_taken"
    title = "Control id already used"


class MaterialExists(Conflict):
    code = "qc_material_exists"
    title = "Control material already exists"


class NothingToAnswer(Conflict):
    code = "qc_violation_answered"
    title = "Violation already answered"


class InvalidTarget(InvalidInput):
    code = "qc_invalid_target"
    title = "Invalid target"
