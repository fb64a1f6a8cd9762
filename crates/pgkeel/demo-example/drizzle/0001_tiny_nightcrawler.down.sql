-- Rollback of 0001_tiny_nightcrawler (pgkeel extension; drizzle-kit ignores this file).
DROP TABLE "question_analysis";
