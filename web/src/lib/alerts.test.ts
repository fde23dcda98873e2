import { describe, expect, it } from "vitest";
import { ruleState, silenceMatchersFor, simpleExpression, type Alert } from "./alerts";

describe("alert helpers", () => {
  it("compiles the simple form like the server does", () => {
    expect(simpleExpression("node_load1", ">", 4)).toBe("node_load1 > 4");
    expect(simpleExpression("rate(x[5m]) * 100", ">=", 1.5)).toBe("(rate(x[5m]) * 100) >= 1.5");
  });

  it("prefills a silence with the alert's labels, alertname first", () => {
    expect(silenceMatchersFor({ labels: { instance: "a", alertname: "HighLoad", severity: "warning" } })).toEqual([
      { name: "alertname", op: "=", value: "HighLoad" },
      { name: "instance", op: "=", value: "a" },
      { name: "severity", op: "=", value: "warning" },
    ]);
  });

  it("derives a rule's state from its active alerts", () => {
    const alert = (rule: string, state: Alert["state"]) => ({ rule, state }) as Alert;
    expect(ruleState("A", [alert("A", "pending"), alert("A", "firing")])).toBe("firing");
    expect(ruleState("A", [alert("A", "pending")])).toBe("pending");
    expect(ruleState("A", [alert("B", "firing")])).toBe("inactive");
  });
});
