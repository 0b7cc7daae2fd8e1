-- API keys managed over HTTP: team keys reach several workspaces; keys are listed per workspace.
ALTER TABLE api_key ADD COLUMN team INTEGER NOT NULL DEFAULT 0;
CREATE TABLE api_key_workspace (
    key_id        TEXT NOT NULL REFERENCES api_key(id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
    PRIMARY KEY (key_id, workspace_id)
) WITHOUT ROWID;
CREATE INDEX api_key_of_workspace ON api_key (workspace_id, created_at);
