-- Argo CD health check for ossea.migratekit.io kinds (MigrationJob, MigrationVolume, OsseaConfig).
-- README.md shows it in argocd-cm; health_test.go runs it on real status shapes.
local hs = { status = "Progressing", message = "Waiting for the controller" }
if obj.status == nil or obj.metadata.generation == nil then return hs end
if obj.status.observedGeneration ~= obj.metadata.generation then return hs end
for _, c in ipairs(obj.status.conditions or {}) do
  if c.type == "Stalled" and c.status == "True" then
    return { status = "Degraded", message = c.reason .. ": " .. (c.message or "") }
  end
end
for _, c in ipairs(obj.status.conditions or {}) do
  if c.type == "Ready" then
    if c.status == "True" then return { status = "Healthy", message = c.message } end
    return { status = "Progressing", message = c.reason .. ": " .. (c.message or "") }
  end
end
return hs
