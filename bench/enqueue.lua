-- wrk script: single-job enqueue. KEY and QUEUE come from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
wrk.path = "/v1/queues/" .. os.getenv("QUEUE") .. "/jobs"
wrk.body = '{"payload":{"contactId":"cid_123","campaignId":"camp_456","step":1}}'
