"""Fixed credentials the demo's gateway simulators and adapters share (demo mode only;
they protect nothing: the simulators move no money)."""

RAZORPAY_KEY_ID = "rzp_test_nidaandemo"
RAZORPAY_KEY_SECRET = "nidaan-demo-razorpay-key-secret"
RAZORPAY_WEBHOOK_SECRET = "nidaan-demo-razorpay-webhook-secret"
STRIPE_SECRET_KEY = "sk_test_nidaandemo"
STRIPE_WEBHOOK_SECRET = "whsec_nidaandemo"
PAYU_KEY = "nidaanDemoKey"
PAYU_SALT = "nidaan-demo-payu-salt"
