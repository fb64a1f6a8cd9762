-- Rollback of 0003_slim_warhawk (pgkeel extension; drizzle-kit ignores this file).
DROP TABLE "page_feedback";
