-- SMS and voice receivers (issue 17): a phone number (url tel:+<digits>) reached through the SMS /
-- voice provider configured in the alert service (LIFTWATCH_SMS_*). Replaces 083's two checks on
-- channel and url (found by their definitions: they were created without names).
DO $$
DECLARE
    found record;
BEGIN
    FOR found IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'alerts_webhooks'::regclass AND contype = 'c'
          AND (pg_get_constraintdef(oid) LIKE '%channel = ANY%' OR pg_get_constraintdef(oid) LIKE '%mailto%')
    LOOP
        EXECUTE format('ALTER TABLE alerts_webhooks DROP CONSTRAINT %I', found.conname);
    END LOOP;
END
$$;
ALTER TABLE alerts_webhooks ADD CONSTRAINT alerts_webhooks_channel
    CHECK (channel IN ('webhook', 'email', 'wecom', 'dingtalk', 'sms', 'voice'));
ALTER TABLE alerts_webhooks ADD CONSTRAINT alerts_webhooks_address CHECK (CASE
    WHEN channel = 'email' THEN url ~ '^mailto:[^@\s]+@[^@\s]+$'
    WHEN channel IN ('sms', 'voice') THEN url ~ '^tel:\+[0-9]{6,15}$'
    ELSE url ~ '^https?://' END);
