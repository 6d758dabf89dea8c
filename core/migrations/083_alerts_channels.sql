-- Every channel, not only signed webhooks (issue 17): a receiver (alerts_webhooks) is a signed
-- webhook, an e-mail address (SMTP), or a WeCom / DingTalk group robot; each has the language
-- its messages are written in, and optional quiet hours (site time) during which non-critical
-- notifications wait. Deliveries keep their rows (status, attempts, last error) for every channel.
ALTER TABLE alerts_webhooks ADD COLUMN channel text NOT NULL DEFAULT 'webhook'
    CHECK (channel IN ('webhook', 'email', 'wecom', 'dingtalk'));
ALTER TABLE alerts_webhooks ADD COLUMN language text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en'));
ALTER TABLE alerts_webhooks ADD COLUMN quiet_from time;
ALTER TABLE alerts_webhooks ADD COLUMN quiet_to time;
ALTER TABLE alerts_webhooks ADD CHECK ((quiet_from IS NULL) = (quiet_to IS NULL));
-- An e-mail receiver's url is mailto:<address>; the others stay http(s).
ALTER TABLE alerts_webhooks DROP CONSTRAINT alerts_webhooks_url_check;
ALTER TABLE alerts_webhooks ADD CHECK (CASE WHEN channel = 'email' THEN url ~ '^mailto:[^@\s]+@[^@\s]+$'
                                            ELSE url ~ '^https?://' END);
