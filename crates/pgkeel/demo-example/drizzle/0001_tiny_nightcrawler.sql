CREATE TABLE IF NOT EXISTS "question_analysis" (
	"id" serial PRIMARY KEY NOT NULL,
	"session_id" uuid NOT NULL,
	"file_id" uuid NOT NULL,
	"question" text NOT NULL,
	"answer" text,
	"score" numeric(5, 2),
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
DO $$ BEGIN
 ALTER TABLE "question_analysis" ADD CONSTRAINT "question_analysis_session_id_analysis_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."analysis_sessions"("id") ON DELETE cascade ON UPDATE no action;
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;
--> statement-breakpoint
DO $$ BEGIN
 ALTER TABLE "question_analysis" ADD CONSTRAINT "question_analysis_file_id_processed_files_id_fk" FOREIGN KEY ("file_id") REFERENCES "public"."processed_files"("id") ON DELETE cascade ON UPDATE no action;
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;
