-- Rollback of 0001_tiny_nightcrawler (pgshift extension; drizzle-kit ignores this file).
DROP TABLE "question_analysis";
