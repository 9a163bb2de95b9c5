-- The operator who looks after a person (interactions reminds them of the person's occasions).
ALTER TABLE persons ADD COLUMN owner text NOT NULL DEFAULT '';
