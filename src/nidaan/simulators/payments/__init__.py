"""Payment gateway simulators (Razorpay, Stripe, PayU): ASGI apps speaking each gateway's
documented API and signing webhooks as it does. Used by the tests, the benchmark and the
demo (mounted under ``/simulators/<gateway>`` by ``nidaan demo run``)."""
