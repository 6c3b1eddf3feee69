"""Reports: signed PDF versions of an order's verified results."""
