"""Home collection: slots, booking (front desk and the patient link), phlebotomist runs,
doorstep collection and payment, reminders. An edge module: core modules never import it."""
