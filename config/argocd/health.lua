-- Argo CD health of Herald's Topic, Subscription and EventSource
-- (eventing.herald.dev/v1alpha1), from the Ready and Stalled conditions the
-- operator reports and the generation it last observed:
--
--   Healthy      Ready is True and status.observedGeneration equals
--                metadata.generation.
--   Degraded     Stalled is True (the spec must change), or Ready is False
--                for a reason that needs someone to act: a missing or
--                unaddressable reference, an invalid spec, a permission, a
--                NATS error, an unavailable Deployment.
--   Progressing  otherwise: no status yet, an older generation observed,
--                Ready Unknown, or Ready False while work is under way
--                (Progressing, NotReady: a dependency is starting, Deleting).
local hs = { status = "Progressing", message = "Waiting for the Herald operator" }

local progressingReasons = { Progressing = true, NotReady = true, Deleting = true }

local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  return c.reason or c.type
end

if obj.status == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the Herald operator to observe generation " .. string.format("%d", generation)
  return hs
end

local ready, stalled
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    elseif c.type == "Stalled" then
      stalled = c
    end
  end
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

if ready == nil then
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end

hs.message = describe(ready)
if ready.status == "False" and not progressingReasons[ready.reason] then
  hs.status = "Degraded"
end
return hs
