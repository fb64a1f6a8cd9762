-- Rollback of 0003_slim_warhawk (pgshift extension; drizzle-kit ignores this file).
DROP TABLE "page_feedback";
