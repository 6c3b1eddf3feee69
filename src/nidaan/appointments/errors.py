from nidaan.kit.errors import Conflict, Forbidden, InvalidInput, NidaanError, NotFound


class AppointmentNotFound(NotFound):
    code = "appointment_not_found"
    title = "Appointment not found"


class SlotNotFound(NotFound):
    code = "slot_not_found"
    title = "Slot not found"


class SlotFull(Conflict):
    code = "slot_full"
    title = "The slot is full"


class SlotClosed(Conflict):
    code = "slot_closed"
    title = "The slot is closed"


class AlreadyBooked(Conflict):
    code = "already_booked"
    title = "The patient already has a visit that day"


class AreaNotServed(InvalidInput):
    code = "pincode_not_served"
    title = "This pincode is not served"


class IllegalVisitTransition(Conflict):
    code = "illegal_visit_transition"
    title = "Illegal visit status change"


class CapacityBelowBookings(Conflict):
    code = "capacity_below_bookings"
    title = "Capacity below the bookings already made"


class OneTimeCodeInvalid(NidaanError):
    status_code = 400
    code = "otp_invalid"
    title = "Wrong or expired code"


class TooManyCodes(NidaanError):
    status_code = 429
    code = "otp_rate_limited"
    title = "Too many codes asked for"


class BookingTokenInvalid(Forbidden):
    code = "booking_token_invalid"
    title = "Booking session expired"
