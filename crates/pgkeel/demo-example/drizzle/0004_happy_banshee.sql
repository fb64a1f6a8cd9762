CREATE TYPE "public"."feedback_category" AS ENUM('content', 'navigation', 'accuracy', 'other');--> statement-breakpoint
ALTER TABLE "page_feedback" ADD COLUMN "category" "feedback_category" DEFAULT 'other' NOT NULL;--> statement-breakpoint
-- pgkeel:ignore require-concurrent-index drizzle-orm's migrator cannot run CONCURRENTLY and page_feedback is small
CREATE INDEX "page_feedback_page_idx" ON "page_feedback" USING btree ("page");