from nidaan.kit.errors import Conflict


class BranchCodeTaken(Conflict):
    code = "branch_code_taken"
    title = "Branch code already used"


class OrganisationSlugTaken(Conflict):
    code = "organisation_slug_taken"
    title = "Organisation slug already used"
