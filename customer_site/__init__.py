"""The customer self-service site: sign in, track orders as a customer or a guest."""
from flask import Flask, redirect, render_template, url_for

from shared.web import create_web_app


def create_app(config: dict | None = None) -> Flask:
    # The cookie name differs from the portal's because browsers share cookies between ports of one host.
    app = create_web_app("customer_site", {"SESSION_COOKIE_NAME": "orderloom_customer",
                                           "MAX_CONTENT_LENGTH": 64 * 1024}, config)

    from customer_site import account, auth, invoice_profiles, invoices, orders, parcel_help, self_service, tracking
    from customer_site.access import customer_login, signed_in_customer
    from customer_site.errors import install_customer_errors
    from customer_site.forms import GuestLookupForm, SignInForm

    customer_login.init_app(app)
    customer_login.login_view = "auth.sign_in"
    customer_login.session_protection = "strong"
    install_customer_errors(app)
    for module in (auth, orders, tracking, invoice_profiles, invoices, parcel_help, account, self_service):
        app.register_blueprint(module.bp)
    from customer_site import after_sales

    app.register_blueprint(after_sales.bp)

    @app.get("/", endpoint="index")
    def _index():
        """Signed-in customers go to their orders; visitors choose between signing in and tracking as a guest."""
        if signed_in_customer() is not None:
            return redirect(url_for("orders.index"))
        return render_template("customer/home.html", sign_in_form=SignInForm(), lookup_form=GuestLookupForm())

    return app
