"""Place-order's SQL, statement for statement, for the ceilings (the Flask checkout POST and pgbench).

These are the statements `storefront.checkout.services.place_order` sends, in order: the idempotency lookup,
the order, its lines, its charge attempt and "placed" event, the cart's lines deleted, and the guarded UPDATE
of the variant last, then COMMIT. Shipping methods and tax rates come from a snapshot the web process keeps
(`checkout.views.current_pricing`), so neither side reads them per order. Not included: what the view does
around it (loading the cart, its lines and images, the session cookie, CSRF, limits); that difference is
part of what the ratio to this ceiling shows.
"""

IDEMPOTENCY = "SELECT * FROM orders WHERE idempotency_key = :key"
INSERT_ORDER = (
    "INSERT INTO orders (number, idempotency_key, user_id, email, status, currency, subtotal, shipping_total, "
    "tax_total, total, shipping_method, ship_name, ship_line1, ship_line2, ship_city, ship_region, "
    "ship_postal_code, ship_country, ship_phone, expires_at, paid_at, payment_message, tracking_number, "
    "shipped_at) VALUES (:number, :key, NULL, :email, 'pending_payment', 'USD', 9.99, 4.95, 0.00, 14.94, "
    "'Standard', :name, :line1, '', :city, '', :postal_code, :country, '', now() + interval '15 minutes', "
    "NULL, '', '', NULL) RETURNING id, created_at, updated_at"
)
INSERT_LINE = (
    "INSERT INTO order_lines (order_id, variant_id, sku, product_name, variant_name, unit_price, quantity, "
    "line_total) VALUES (:order_id, :variant_id, 'DEMO-FLASH', 'Aurora Crystal Drop Necklace', 'Gold / 18\"', "
    "9.99, 1, 9.99) RETURNING id"
)
INSERT_EVENT = (
    "INSERT INTO order_events (order_id, kind, message, data) "
    "VALUES (:order_id, 'placed', 'Order placed for 14.94 USD.', '{}') RETURNING id, created_at"
)
INSERT_ATTEMPT = (
    "INSERT INTO payment_attempts (order_id, kind, status, amount, invoice_number, nonce_descriptor, "
    "nonce_value, nonce_hash, trans_id, ref_trans_id, auth_code, response_code, reason_code, message, avs, "
    "cvv, account, tries) VALUES (:order_id, 'charge', 'created', 14.94, :number, "
    "'COMMON.ACCEPT.INAPP.PAYMENT', 'test-approve', "
    "'b23997089b349dbb09f2e712391ce9d7cd9f08d5a5737b1f6dc9d7f4a9723c70', '', '', '', '', '', '', '', '', '', 0) "
    "RETURNING id, created_at, updated_at"
)
DELETE_CART = "DELETE FROM cart_lines WHERE cart_id = :cart_id"
RESERVE = "UPDATE variants SET reserved = reserved + 1 WHERE id = :variant_id AND on_hand - reserved >= 1"

# The same transaction as a pgbench script: -D lo=ID -D hi=ID picks the variant (lo = hi: one hot row).
# The order number and idempotency key come from a 16-digit random number (the app makes them in Python);
# the lookup uses that constant too: a volatile expression there (random()) would defeat the unique index.
PGBENCH_SCRIPT = """\\set v random(:lo, :hi)
\\set cart random(100000000, 200000000)
\\set n random(1000000000000000, 9999999999999999)
BEGIN;
SELECT * FROM orders WHERE idempotency_key = 'bench-:n';
{insert_order} \\gset
{insert_line};
{insert_event};
{insert_attempt};
DELETE FROM cart_lines WHERE cart_id = :cart;
UPDATE variants SET reserved = reserved + 1 WHERE id = :v AND on_hand - reserved >= 1;
COMMIT;
"""


def pgbench_script() -> str:
    """The pgbench form of the transaction above (pgbench substitutes :name, even inside quotes)."""
    order = (
        INSERT_ORDER.replace(":number", "'SF-:n'")
        .replace(":key", "'bench-:n'")
        .replace(":email", "'shopper@example.com'")
        .replace(":name", "'Ada Lovelace'")
        .replace(":line1", "'1 Main St'")
        .replace(":city", "'Springfield'")
        .replace(":postal_code", "'62701'")
        .replace(":country", "'US'")
        .replace("RETURNING id,", "RETURNING id AS order_id,")
    )
    return PGBENCH_SCRIPT.format(
        insert_order=order,
        insert_line=INSERT_LINE.replace(":variant_id", ":v"),
        insert_event=INSERT_EVENT,
        insert_attempt=INSERT_ATTEMPT.replace(":number", "'SF-:n'"),
    )
