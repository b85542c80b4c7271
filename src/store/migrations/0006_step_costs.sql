-- Schema 6: what one step of a saga costs the store.
--
-- The overlap check of a slot claim reads every live claim of the host in
-- the day before it. With `end_ms` in the index those that end before the
-- new claim starts (nearly all) are passed over without reading their rows.
DROP INDEX slot_claims_live_by_host;
CREATE INDEX slot_claims_live_by_host ON slot_claims (host, start_ms, end_ms) WHERE live = 1;
