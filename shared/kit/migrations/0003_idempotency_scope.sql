-- Request ids are scoped by caller and method: two integrators, or one integrator calling two
-- methods, may pick the same id without one being refused as the other's replay.
ALTER TABLE crm_idempotency ADD COLUMN caller text NOT NULL DEFAULT '';
ALTER TABLE crm_idempotency DROP CONSTRAINT crm_idempotency_pkey;
ALTER TABLE crm_idempotency ADD PRIMARY KEY (caller, method, request_id);
