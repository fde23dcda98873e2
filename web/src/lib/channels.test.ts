import { describe, expect, it } from "vitest";
import { configFromForm, formFromConfig } from "./channels";

describe("channel forms", () => {
  it("turns form values into a config, lists split and numbers parsed", () => {
    expect(
      configFromForm("email", {
        smtp_host: " mail.local ",
        smtp_port: "2525",
        security: "none",
        username: "",
        password: "",
        from: "hubmon@local",
        to: "a@local, b@local,",
      }),
    ).toEqual({ smtp_host: "mail.local", smtp_port: 2525, security: "none", from: "hubmon@local", to: ["a@local", "b@local"] });
  });

  it("never shows a stored secret and leaves it out when unchanged", () => {
    const form = formFromConfig("slack", { webhook_url: "https://hooks…****", channel: "#ops" });
    expect(form).toEqual({ webhook_url: "", channel: "#ops", username: "" });
    expect(configFromForm("slack", form)).toEqual({ channel: "#ops" });
  });

  it("sends booleans only when set", () => {
    expect(configFromForm("dingtalk", { webhook_url: "u", at_all: true })).toEqual({ webhook_url: "u", at_all: true });
    expect(configFromForm("dingtalk", { webhook_url: "u", at_all: false })).toEqual({ webhook_url: "u" });
  });
});
