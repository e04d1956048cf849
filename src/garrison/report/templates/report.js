(function () {
  "use strict";
  var form = document.getElementById("filters");
  var groups = Array.prototype.slice.call(document.querySelectorAll("details.asset"));
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
  if (!form) { return; }
  form.hidden = false;
  var empty = document.getElementById("filter-empty");
  function apply() {
    var shown = {};
    form.querySelectorAll("input[type=checkbox]").forEach(function (box) { shown[box.value] = box.checked; });
    var visible = 0;
    groups.forEach(function (group) {
      var inGroup = 0;
      group.querySelectorAll(".finding").forEach(function (finding) {
        var on = shown[finding.getAttribute("data-severity")] === true;
        finding.hidden = !on;
        if (on) { inGroup += 1; }
      });
      group.hidden = inGroup === 0;
      visible += inGroup;
    });
    if (empty) { empty.hidden = visible !== 0; }
  }
  form.addEventListener("change", apply);
  var toggle = document.getElementById("toggle-all");
  toggle.addEventListener("click", function () {
    var open = toggle.textContent === "Expand all";
    groups.forEach(function (group) { group.open = open; });
    toggle.textContent = open ? "Collapse all" : "Expand all";
  });
  apply();
})();
