-- Rollback of 0002_loose_colossus (pgkeel extension; drizzle-kit ignores this file).
DROP TABLE "user_progress";
