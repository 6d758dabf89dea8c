-- Rectification orders: the hidden-hazard closed loop (a regulator orders, the firm answers, the
-- regulator closes or sends it back). Statuses and actions: api/rectification.py.

CREATE TABLE rectification_orders (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The elevator the order is about; NULL for an order on the firm as a whole.
    registration_code   text REFERENCES elevators (registration_code) ON DELETE SET NULL,
    -- The firm that must answer, taken from the registry when the order is opened.
    maintainer_id       bigint NOT NULL REFERENCES maintenance_firms (id),
    incident_id         bigint REFERENCES incidents (id) ON DELETE SET NULL,
    title               text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    status              text NOT NULL CHECK (status IN ('open', 'answered', 'closed')),
    due_on              date NOT NULL,
    opened_at           timestamptz NOT NULL DEFAULT now(),
    opened_by           text NOT NULL,
    answered_at         timestamptz,
    closed_at           timestamptz
);
CREATE INDEX rectification_orders_status ON rectification_orders (status, due_on);
CREATE INDEX rectification_orders_firm ON rectification_orders (maintainer_id, status);
CREATE INDEX rectification_orders_elevator ON rectification_orders (registration_code);

-- The audit trail, like incident_events: one row per action, never updated.
CREATE TABLE rectification_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES rectification_orders (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('opened', 'answered', 'reopened', 'closed')),
    status_after text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    note        text NOT NULL DEFAULT ''
);
CREATE INDEX rectification_events_order ON rectification_events (order_id, id);
