// queue-core dashboard: ask before an action. Without script, the server asks instead
// (the form's "confirmed" field stays 0 and a confirmation page comes back).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.matches || !form.matches("form[data-confirm]")) {
    return;
  }
  if (window.confirm(form.getAttribute("data-confirm"))) {
    form.querySelector("input[name=confirmed]").value = "1";
  } else {
    event.preventDefault();
  }
});
