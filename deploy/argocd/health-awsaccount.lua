-- Argo CD health of an AwsAccount, read from the status xacct writes.
hs = {status = "Progressing", message = "waiting for xacct to verify the account"}
if obj.status == nil or obj.status.conditions == nil then return hs end
local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
end
if ready == nil then return hs end
local observed = obj.status.observedGeneration or ready.observedGeneration
local generation = obj.metadata.generation
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "waiting for xacct to verify generation " .. generation
  return hs
end
if ready.message == nil or ready.message == "" then
  hs.message = ready.reason or ""
else
  hs.message = (ready.reason or "") .. ": " .. ready.message
end
if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" and ready.reason ~= "InUse" then
  -- AssumeRoleFailed, AccountMismatch: the role, its trust policy or the external id needs fixing.
  hs.status = "Degraded"
end
-- Unknown, and InUse (deleted, held until the grants that use it are gone): Progressing.
return hs
