-- Argo CD health of a SnapshotShare, read from the status xacct writes.
hs = {status = "Progressing", message = "waiting for xacct to share the snapshot"}
if obj.status == nil or obj.status.conditions == nil then return hs end
local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
end
if ready == nil then return hs end
local observed = obj.status.observedGeneration or ready.observedGeneration
local generation = obj.metadata.generation
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "waiting for xacct to reconcile generation " .. generation
  return hs
end
if ready.message == nil or ready.message == "" then
  hs.message = ready.reason or ""
else
  hs.message = (ready.reason or "") .. ": " .. ready.message
end
if ready.status == "True" then
  hs.status = "Healthy"
  return hs
end
if ready.status ~= "False" then return hs end
-- Waiting for a copy or a snapshot to become available, for the account, or retried by itself.
local waiting = {CopyInProgress = true, SnapshotNotAvailable = true, Pending = true,
                 AccountNotReady = true, Throttled = true, AwsUnavailable = true}
if not waiting[ready.reason] then hs.status = "Degraded" end
return hs
