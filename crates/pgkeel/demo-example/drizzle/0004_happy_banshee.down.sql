-- Rollback of 0004_happy_banshee (pgkeel extension; drizzle-kit ignores this file).
DROP INDEX "page_feedback_page_idx";
--> statement-breakpoint
ALTER TABLE "page_feedback" DROP COLUMN "category";
--> statement-breakpoint
DROP TYPE "public"."feedback_category";
