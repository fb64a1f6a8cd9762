CREATE TABLE IF NOT EXISTS "page_feedback" (
	"id" serial PRIMARY KEY NOT NULL,
	"user_id" uuid,
	"page" text NOT NULL,
	"rating" smallint NOT NULL,
	"comment" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "page_feedback_rating_check" CHECK ("page_feedback"."rating" >= 1 AND "page_feedback"."rating" <= 5)
);
--> statement-breakpoint
DO $$ BEGIN
 ALTER TABLE "page_feedback" ADD CONSTRAINT "page_feedback_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;
