-- Rollback of 0000_brave_wolverine (pgkeel extension; drizzle-kit ignores this file).
DROP TABLE "processed_files";
--> statement-breakpoint
DROP TABLE "analysis_sessions";
--> statement-breakpoint
DROP TABLE "users";
