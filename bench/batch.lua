-- wrk script: batch enqueue of 1,000 jobs per request. KEY and QUEUE come from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
wrk.path = "/v1/queues/" .. os.getenv("QUEUE") .. "/jobs/batch"
local jobs = {}
for i = 1, 1000 do
  jobs[i] = '{"payload":{"contactId":"cid_' .. i .. '","campaignId":"camp_456"}}'
end
wrk.body = '{"jobs":[' .. table.concat(jobs, ",") .. ']}'
