// Tap a figure to see it full size: on a phone a whole node's diagram is too small to read.
// The figure's text is 12 units; zoomed it is shown at 1.05 CSS pixels a unit (a little over
// 12 px, the least a phone reader can read), in a layer that scrolls; a tap or Escape closes it.
(function () {
  "use strict";
  function close(figure) {
    figure.classList.remove("labkit-zoomed");
    figure.removeAttribute("aria-expanded");
    document.body.style.overflow = "";
  }
  function open(figure) {
    var svg = figure.querySelector("svg.labkit-diagram");
    var box = svg && svg.viewBox && svg.viewBox.baseVal;
    if (box && box.width) {
      figure.style.setProperty("--labkit-zoom-width", Math.round(box.width * 1.05) + "px");
    }
    figure.classList.add("labkit-zoomed");
    figure.setAttribute("aria-expanded", "true");
    document.body.style.overflow = "hidden";
  }
  document.addEventListener("click", function (event) {
    var figure = event.target.closest && event.target.closest(".labkit-figure");
    if (!figure || !figure.querySelector("svg.labkit-diagram")) {
      return;
    }
    if (figure.classList.contains("labkit-zoomed")) {
      close(figure);
    } else {
      open(figure);
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll(".labkit-figure.labkit-zoomed").forEach(close);
    }
  });
})();
