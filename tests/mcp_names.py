"""The MCP tools the API contract lists, by server, in its order."""

WORKSPACE_TOOL_NAMES = [
    "rotor_list_queues", "rotor_get_queue", "rotor_create_queue", "rotor_update_queue", "rotor_set_queue_state",
    "rotor_drain_queue", "rotor_delete_queue", "rotor_list_schedules", "rotor_get_schedule", "rotor_create_schedule",
    "rotor_update_schedule", "rotor_delete_schedule", "rotor_force_fire_schedule", "rotor_inspect_run_history",
    "rotor_list_jobs", "rotor_get_job", "rotor_add_job", "rotor_retry_job", "rotor_delete_job", "rotor_get_dlq",
    "rotor_replay_dlq", "rotor_get_status", "rotor_list_api_keys", "rotor_create_api_key", "rotor_revoke_api_key",
    "rotor_list_workspaces", "rotor_get_workspace",
]
WORKFLOW_TOOL_NAMES = [
    "list_workflows", "trigger_workflow", "invoke_workflow", "get_run", "list_runs", "cancel_run", "upsert_queue",
    "set_queue_state", "drain_queue", "queue_stats", "upsert_schedule", "approve_run", "approve_job",
]
ADMIN_TOOL_NAMES = [
    "rotor_list_workspaces", "rotor_get_workspace_queues", "rotor_get_workspace_schedules", "rotor_inspect_job",
    "rotor_get_dlq", "rotor_replay_dlq", "rotor_fire_schedule_now",
]
DESTRUCTIVE = {
    "rotor_drain_queue", "rotor_delete_queue", "rotor_delete_schedule", "rotor_force_fire_schedule",
    "rotor_delete_job", "rotor_replay_dlq", "rotor_revoke_api_key", "drain_queue", "rotor_fire_schedule_now",
}
