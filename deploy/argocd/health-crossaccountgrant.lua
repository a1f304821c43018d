-- Argo CD health of a CrossAccountGrant, read from the status xacct writes.
hs = {status = "Progressing", message = "waiting for xacct to reconcile the grant"}
local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then return c end
  end
  return nil
end
local function describe(c)
  if c.message == nil or c.message == "" then return c.reason or "" end
  return (c.reason or "") .. ": " .. c.message
end
local ready = condition("Ready")
if ready == nil then return hs end
local observed = obj.status.observedGeneration or ready.observedGeneration
local generation = obj.metadata.generation
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "waiting for xacct to reconcile generation " .. generation
  return hs
end
hs.message = describe(ready)
if ready.status == "True" then
  hs.status = "Healthy"
  return hs
end
if ready.status ~= "False" then
  -- Unknown: xacct has no result yet and looks again.
  return hs
end
if obj.spec ~= nil and obj.spec.mode == "Observe" and ready.reason == "Pending" then
  -- Observe never writes: the policy lacks the grant's statements and stays so until someone
  -- writes them or sets mode: Enforce.
  local drifted = condition("Drifted")
  if drifted ~= nil and drifted.status == "True" then
    hs.status = "Degraded"
    hs.message = "Observe mode, drift: " .. describe(drifted)
  else
    hs.status = "Suspended"
    hs.message = "Observe mode (xacct never writes): " .. describe(ready)
  end
  return hs
end
-- Retried by xacct on its own: the account becoming Ready, AWS throttling or unavailable.
local transient = {Pending = true, AccountNotReady = true, Throttled = true, AwsUnavailable = true}
if transient[ready.reason] then return hs end
hs.status = "Degraded"
return hs
