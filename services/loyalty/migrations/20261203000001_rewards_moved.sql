-- A program's rewards are the rewards service's: each reward names its program.
ALTER TABLE programs DROP COLUMN reward_ids;
